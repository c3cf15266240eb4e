"""The embedded demo model's own tasks, built from its corpus' training templates and names."""

from __future__ import annotations

import random

from circuitforge.demo_world import corpus
from circuitforge.tasks.ioi import ioi_pairs
from circuitforge.tasks.prompt_pairs import PromptPair


def demo_ioi_pairs(
    n: int, seed: int = 0, heldout: bool = False, template: int | None = None
) -> list[PromptPair]:
    """IOI on the demo world's templates and names (the training ones unless `heldout`);
    `template` keeps one template of that list (its index)."""
    k_names, k_templates = corpus.N_HELDOUT_NAMES, corpus.N_HELDOUT_IOI_TEMPLATES
    names = corpus.NAMES[-k_names:] if heldout else corpus.NAMES[:-k_names]
    templates = (
        corpus.IOI_TEMPLATES[-k_templates:] if heldout else corpus.IOI_TEMPLATES[:-k_templates]
    )
    templates = one_template(templates, template)
    return ioi_pairs(n, seed, templates, names, corpus.IOI_PLACES, corpus.IOI_THINGS)


def one_template(templates: list[str], index: int | None) -> list[str]:
    if index is None:
        return templates
    if not 0 <= index < len(templates):
        raise ValueError(f"template {index} out of range: there are {len(templates)} templates")
    return [templates[index]]


def demo_greater_than_pairs(n: int, seed: int = 0, heldout: bool = False) -> list[PromptPair]:
    """`... from the year 1732 to the year 17` -> `33` (YY + 1) against `31`; corrupt YY = 01."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        text, start = corpus.greater_than_sentence(rng, heldout)
        prompt = text[: -len("00.")]
        year = prompt.rsplit("from the year ", 1)[1][:4]
        corrupt = prompt.replace(f"year {year}", f"year {year[:2]}01", 1)
        pairs.append(PromptPair(prompt, corrupt, f"{start + 1:02d}", f"{start - 1:02d}"))
    return pairs

"""S4 observational prediction: does E make the neuron's top-decile held-out contexts less
surprising than its other contexts?

Per neuron: positives are `per_side` contexts drawn from those whose maximum of the neuron is at or
above its 90th percentile over every context (`held_out.Contexts`), negatives `per_side` drawn
from the rest (seeded by the neuron). A context's gain from E is its surprisal alone
(`<bos> + window`) minus its surprisal after E (`<bos> + E + "\n" + window`), both the model's own
mean NLL over the window's tokens. S4 = AUROC(gains of the positives, gains of the negatives).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.explanations.benchmark.held_out import Contexts, token_surprisal
from circuitforge.explanations.benchmark.ranking import auroc
from circuitforge.model.tokenizer import encode, maybe_token_id, tokenizer_of


def pick_contexts(
    activation: Float[Tensor, " context"], per_side: int, seed: int
) -> tuple[Int[Tensor, " p"], Int[Tensor, " q"]]:
    """(top-decile contexts, other contexts), up to `per_side` of each, drawn by `seed`."""
    if per_side < 1:
        raise ValueError(f"s4_per_side must be >= 1, got {per_side}")
    threshold = torch.quantile(activation.double(), 0.9)
    top = torch.nonzero(activation.double() >= threshold)[:, 0]
    rest = torch.nonzero(activation.double() < threshold)[:, 0]
    g = torch.Generator().manual_seed(seed)
    return (
        top[torch.randperm(len(top), generator=g)[:per_side]],
        rest[torch.randperm(len(rest), generator=g)[:per_side]],
    )


def surprisal_gain(
    model: HookedTransformer, text: str, windows: Int[Tensor, "context window"],
    alone: Float[Tensor, " context"],
) -> Float[Tensor, " context"]:  # fmt: skip
    """alone - the windows' mean NLL after `<bos> + text + "\\n"`."""
    tokenizer = tokenizer_of(model)
    bos = maybe_token_id(tokenizer, "bos")
    (prefix,) = encode(tokenizer, [text.strip() + "\n"], add_special_tokens=False)
    prefix = ([] if bos is None else [bos]) + prefix
    rows = [prefix + w for w in windows.tolist()]
    return alone - token_surprisal(model, rows, [len(prefix)] * len(rows))


def prediction_score(
    model: HookedTransformer, contexts: Contexts, neuron: int, text: str, per_side: int,
    seed: int = 0,
) -> float | None:  # fmt: skip
    """S4 of `text` for `neuron` (None for an empty text)."""
    if not text.strip():
        return None
    top, rest = pick_contexts(contexts.activation[:, neuron], per_side, seed * 1_000_003 + neuron)
    chosen = torch.cat([top, rest])
    gain = surprisal_gain(model, text, contexts.tokens[chosen], contexts.surprisal[chosen])
    return auroc(gain[: len(top)], gain[len(top) :])

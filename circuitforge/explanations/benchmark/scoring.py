"""What the scores read off held-out text, computed once per run (`build_scoring`): each neuron's
99.9th percentile (S1, S2), S3's clamp prompts, S4's contexts, the corpus's cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.data.texts import load_texts
from circuitforge.explanations.benchmark.carriers import check_carriers
from circuitforge.explanations.benchmark.held_out import (
    Contexts,
    HeldOut,
    make_contexts,
    neuron_quantiles,
    token_surprisal,
)
from circuitforge.explanations.benchmark.output_effect import check_kl_targets
from circuitforge.explanations.methods.clamp import Probe, make_probe


@dataclass(frozen=True)
class Scoring:
    layer: int
    unit: Float[Tensor, " neuron"]  # each neuron's 99.9th percentile on held-out documents
    carriers: list[str]
    probe: Probe  # S3's held-out prompts
    kl_targets: list[float]
    contexts: Contexts | None  # S4's (None: S4 not scored)
    corpus_cross_entropy: float  # mean NLL per token of the held-out documents
    s4_per_side: int = 10
    seed: int = 0


def build_scoring(
    model: HookedTransformer, layer: int, held_out: HeldOut, carriers: list[str],
    kl_targets: list[float], clamp_prompts: int = 8, clamp_prompt_tokens: int = 24,
    s4_window: int = 16, s4_per_side: int = 10, quantile: float = 0.999, seed: int = 0,
) -> Scoring:  # fmt: skip
    """The documents of `held_out` give the unit, S4's contexts (`s4_per_side` 0: no S4) and the
    corpus's cross-entropy; the `clamp_prompts` documents right after them are S3's prompts."""
    check_carriers(carriers)
    check_kl_targets(kl_targets)
    documents = held_out.token_ids(model)
    after = held_out.start + held_out.n_documents
    texts = load_texts(held_out.source, after + clamp_prompts, held_out.text_field)[after:]
    probe = make_probe(model, layer, texts, clamp_prompt_tokens)
    contexts = make_contexts(model, layer, documents, s4_window) if s4_per_side > 0 else None
    first = [1] * len(documents)
    corpus = float(token_surprisal(model, documents, first).nanmean())
    unit = neuron_quantiles(model, layer, documents, quantile)
    return Scoring(
        layer, unit, list(carriers), probe, list(kl_targets), contexts, corpus, s4_per_side, seed
    )

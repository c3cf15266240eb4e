"""M4 VocabProj (Gur-Arieh et al., ACL 2025): a neuron's output weights read through the
unembedding; E = the top tokens. (Implementation in progress.)"""

from __future__ import annotations

from transformer_lens import HookedTransformer

from circuitforge.explanations.methods.common import check_request


def explain_vocab_proj(
    model: HookedTransformer, layer: int, neurons: list[int], *, max_tokens: int = 24
) -> list[str]:
    check_request(model, layer, neurons, max_tokens)
    raise NotImplementedError("vocab_proj: under construction")

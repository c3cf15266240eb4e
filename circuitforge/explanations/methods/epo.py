"""M6 EPO-style prompt optimisation (Thompson et al., "fluent dreaming"): a short prompt found
by a GCG-like token search maximising the neuron's activation minus lambda x the prompt's
cross-entropy; E = that prompt. (In progress.)"""

from __future__ import annotations

from transformer_lens import HookedTransformer

from circuitforge.explanations.methods.common import check_request


def explain_epo(
    model: HookedTransformer, layer: int, neurons: list[int], *, max_tokens: int = 24
) -> list[str]:
    check_request(model, layer, neurons, max_tokens)
    raise NotImplementedError("epo: under construction")

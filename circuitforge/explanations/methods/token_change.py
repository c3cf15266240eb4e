"""M5 TokenChange (Gur-Arieh et al., ACL 2025): the neuron clamped on held-out prompts at a
strength sized to a KL target; E = the tokens whose logits move most. (In progress.)"""

from __future__ import annotations

from transformer_lens import HookedTransformer

from circuitforge.explanations.methods.common import check_request


def explain_token_change(
    model: HookedTransformer,
    layer: int,
    neurons: list[int],
    *,
    max_tokens: int = 24,
    prompts: list[str] | None = None,
    kl_target: float = 0.25,
) -> list[str]:
    check_request(model, layer, neurons, max_tokens)
    if kl_target <= 0:
        raise ValueError(f"kl_target must be > 0, got {kl_target}")
    raise NotImplementedError("token_change: under construction")

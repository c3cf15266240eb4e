"""The activations every dictionary reads, from one forward of the frozen model per batch."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer


@torch.no_grad()
def hook_activations(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    hooks: list[str],
    stop_at_layer: int,
    positions: Bool[Tensor, "batch pos"],
    bf16: bool = False,
) -> dict[str, Float[Tensor, "token d"]]:
    """Each hook's activation at the `positions` tokens, in float32 (one forward, run only up
    to `stop_at_layer`; under `torch.autocast(bfloat16)` when `bf16`)."""
    captured: dict[str, Tensor] = {}

    def capture(act: Tensor, hook: Any) -> None:
        captured[hook.name] = act[positions].float()

    device = tokens.device
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    with autocast:
        model.run_with_hooks(
            tokens,
            fwd_hooks=[(name, capture) for name in hooks],
            stop_at_layer=stop_at_layer,
        )
    return captured


def relative_error(reference: Float[Tensor, "token d"], other: Float[Tensor, "token d"]) -> float:
    """||other - reference|| / ||reference|| over all tokens (Frobenius norms, float64)."""
    ref = reference.double()
    return float((other.double() - ref).norm() / ref.norm())

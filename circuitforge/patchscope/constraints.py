"""Keep optimised vectors at a chosen norm (the seed study had none; its X grew without bound)."""

from __future__ import annotations

from typing import Literal

from jaxtyping import Float
from torch import Tensor

NormConstraint = Literal["none", "ball", "sphere"]


def constrain_norm(
    vectors: Float[Tensor, "batch d_model"], radius: float, mode: NormConstraint
) -> Float[Tensor, "batch d_model"]:
    """`ball`: shrink rows longer than `radius`; `sphere`: rescale every row to `radius`."""
    if mode == "none":
        return vectors
    norms = vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scale = radius / norms
    if mode == "ball":
        scale = scale.clamp(max=1.0)
    return vectors * scale

"""Where a vector enters the residual stream: one position, replaced, for every batch row.

Both the optimisation (which starts its forward at the source layer with the injected residual)
and the Patchscope generation (a hook on `blocks.{S}.hook_resid_pre`) go through
`inject_at_position`, so "where is X injected" has one answer.
"""

from __future__ import annotations

from collections.abc import Callable

from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint


def inject_at_position(
    residual: Float[Tensor, "batch pos d_model"],
    vectors: Float[Tensor, "batch d_model"],
    position: int,
) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream with `residual[b, position]` replaced by `vectors[b]`.

    Differentiable in `vectors`; the vectors are cast to the residual's dtype (an fp32 master
    copy drives a bf16 model) and moved to its device.
    """
    out = residual.clone()
    out[:, position, :] = vectors.to(device=residual.device, dtype=residual.dtype)
    return out


def prefill_injection_hook(
    vectors: Float[Tensor, "batch d_model"], position: int
) -> Callable[[Tensor, HookPoint], Tensor]:
    """A hook that injects at the first call only (the prefill), not at later decoding steps."""
    done = False

    def hook(residual: Tensor, hook: HookPoint) -> Tensor:
        nonlocal done
        if done:
            return residual
        done = True
        return inject_at_position(residual, vectors, position)

    return hook

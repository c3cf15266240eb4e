"""Stopping a run whose numbers left the finite range, before it writes anything from them."""

from __future__ import annotations

import torch
from torch import Tensor


class Diverged(FloatingPointError):
    """The optimisation produced NaN or infinity."""


def check_finite(step: int, hint: str, **values: Tensor) -> None:
    """Raise `Diverged` naming each of `values` that holds NaN or infinity (one device sync per
    call while all is finite: it runs every optimisation step)."""
    if bool(torch.stack([torch.isfinite(v.detach()).all() for v in values.values()]).all()):
        return
    bad = []
    for name, value in values.items():
        value = value.detach()
        count = int((~torch.isfinite(value)).sum())
        if count == 0:
            continue
        if value.numel() == 1:
            bad.append(f"{name} is {value.item()}")
        else:
            bad.append(f"{name} has {count} non-finite of {value.numel()} entries")
    if bad:
        raise Diverged(
            f"step {step}: the optimisation diverged ({'; '.join(bad)}). The run is stopped "
            f"before it writes any result from these numbers; earlier checkpoints are intact. "
            f"{hint}"
        )


def require_at_least_one(**counts: int | None) -> None:
    """Refuse a count below 1 (a batch size, steps per epoch...), naming it; None is skipped."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")

"""The sparsity term of the edge run: how hard, and towards what, the expected density is pushed.

Sparsity here is the fraction of edges removed, 1 - density (Edge Pruning's convention).

- `relu` (the original): weight * relu(density - (1 - target)), the target sparsity ramped
  linearly from `start` to `target` over `warmup_steps`.
- `lagrangian` (Edge Pruning, Bhaskar et al. 2024, `modeling_fpt2.py`): l1 (s - t) + l2 (s - t)^2
  with s the expected sparsity, t the ramped target, and l1, l2 trained by gradient ASCENT
  (`maximize=True` in the optimiser, `lambda_lr`), so the constraint s = t is enforced rather
  than traded off against faithfulness. Edge Pruning: IOI lr 0.8 for both, target ramped over
  2,500 of 3,000 steps; tracr reverse 0.03 / 0.001 over 5,900 of 6,000.

`SparsityTerm.from_setting` reads the module's `sparsity:` dictionary and refuses bad values in
one line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from jaxtyping import Float
from torch import Tensor

SPARSITY_KINDS = ("relu", "lagrangian")


@dataclass(frozen=True)
class SparsityTerm:
    """Args:
    kind: `relu` or `lagrangian`.
    target: final sparsity (fraction of edges removed), >= 0; above 1 pushes past every edge
        (Edge Pruning runs 1.02-1.1 to reach its smallest circuits).
    start: sparsity the ramp starts from (a warm start's sparsity, or 0).
    warmup_steps: steps of the linear ramp from `start` to `target`.
    weight: the relu term's weight (unused by `lagrangian`).
    lambda_lr: the Lagrange multipliers' learning rate (gradient ascent; `lagrangian` only).
    """

    kind: str = "relu"
    target: float = 1.0
    start: float = 0.0
    warmup_steps: int = 100
    weight: float = 1.0
    lambda_lr: float = 0.8

    def __post_init__(self) -> None:
        if self.kind not in SPARSITY_KINDS:
            raise ValueError(f"sparsity kind must be one of {SPARSITY_KINDS}, got {self.kind!r}")
        if self.target < 0:
            raise ValueError(f"sparsity target must be >= 0, got {self.target}")
        if self.start < 0:
            raise ValueError(f"sparsity start must be >= 0, got {self.start}")
        if self.warmup_steps < 0:
            raise ValueError(f"sparsity warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.weight < 0 or self.lambda_lr < 0:
            raise ValueError("sparsity weight and lambda_lr must be >= 0")

    @classmethod
    def from_setting(cls, setting: dict) -> SparsityTerm:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(setting) - known)
        if unknown:
            raise ValueError(f"sparsity: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**setting)

    def target_at(self, step: int) -> float:
        """The target sparsity at `step` (linear ramp, then flat)."""
        progress = min(1.0, step / max(1, self.warmup_steps))
        return self.start + (self.target - self.start) * progress


def relu_penalty(
    density: Float[Tensor, ""], target_sparsity: float, weight: float
) -> Float[Tensor, ""]:
    """weight * relu(density - (1 - target sparsity)): zero once the circuit is small enough."""
    return weight * torch.relu(density - (1.0 - target_sparsity))


def lagrangian_penalty(
    density: Float[Tensor, ""], target_sparsity: float, lambdas: Float[Tensor, "2"]
) -> Float[Tensor, ""]:
    """Edge Pruning's l1 (s - t) + l2 (s - t)^2, s = 1 - density; the caller ascends `lambdas`."""
    gap = (1.0 - density) - target_sparsity
    return lambdas[0] * gap + lambdas[1] * gap * gap

"""Nested budgets: one run walks down MIB's fractions of edges and yields every circuit.

The run spends `steps_per_budget` steps at each fraction (largest first). At the end of a
stage at fraction f, every edge outside the top `int(f * n)` by parameter is dropped for good
(its coefficient held at 0 from then on) and the stage at which it went is recorded. The final
ranking (`nested_importance`) puts edges dropped later above edges dropped earlier, and within
a stage orders them by their parameter when they went; so the top `int(f * n)` of the final
ranking is exactly the circuit the run held at fraction f: the nine circuits are nested.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from circuitforge.edges.faithfulness import MIB_FRACTIONS, check_fractions, mib_edge_count


@dataclass(frozen=True)
class NestedBudgets:
    """Args:
    fractions: the budgets, each in (0, 1] (walked largest first); default MIB's.
    steps_per_budget: optimisation steps spent at each budget (>= 1).
    """

    fractions: tuple[float, ...] = MIB_FRACTIONS
    steps_per_budget: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", check_fractions(sorted(self.fractions)))
        if self.steps_per_budget < 1:
            raise ValueError(f"steps_per_budget must be >= 1, got {self.steps_per_budget}")

    @property
    def descending(self) -> tuple[float, ...]:
        return tuple(sorted(self.fractions, reverse=True))

    @property
    def total_steps(self) -> int:
        return self.steps_per_budget * len(self.fractions)

    def stage_at(self, step: int) -> int:
        """Index (into `descending`) of the budget trained at `step` (the last one after)."""
        return min(step // self.steps_per_budget, len(self.fractions) - 1)

    def fraction_at(self, step: int) -> float:
        return self.descending[self.stage_at(step)]

    def ends_stage(self, step: int) -> bool:
        """Whether the step just finished (0-based `step`) closes a stage."""
        return (step + 1) % self.steps_per_budget == 0 and step < self.total_steps


def drop_outside_budget(
    theta: Float[Tensor, " edge"],
    dropped_at: Int[Tensor, " edge"],
    theta_at_drop: Float[Tensor, " edge"],
    fraction: float,
    stage: int,
) -> Bool[Tensor, " edge"]:
    """Mark (in place) every live edge outside the top `int(fraction * n)` live edges by `theta`
    as dropped at `stage`, keeping its parameter; returns the newly dropped edges."""
    n = theta.numel()
    live = dropped_at < 0
    keep = mib_edge_count(fraction, n)
    values = torch.where(live, theta.detach().double(), torch.finfo(torch.float64).min)
    order = torch.sort(values, descending=True, stable=True).indices
    inside = torch.zeros(n, dtype=torch.bool)
    inside[order[:keep]] = True
    new = live & ~inside
    dropped_at[new] = stage
    theta_at_drop[new] = theta.detach()[new].to(theta_at_drop.dtype)
    return new


def nested_importance(
    theta: Float[Tensor, " edge"],
    dropped_at: Int[Tensor, " edge"],
    theta_at_drop: Float[Tensor, " edge"],
    n_stages: int,
) -> Float[Tensor, " edge"]:
    """Per edge a score >= 0 whose ranking nests the budgets' circuits: the stage it was dropped
    at (live edges: `n_stages`), then its parameter (then, as it went) as a fraction below 1."""
    level = torch.where(dropped_at < 0, n_stages, dropped_at).double()
    value = torch.where(dropped_at < 0, theta.detach().double(), theta_at_drop.double())
    return level + torch.sigmoid(value) * 0.999

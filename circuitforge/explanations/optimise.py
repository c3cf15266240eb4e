"""The gradient Patchscope's optimisation for a chunk of neurons, as a plain loop.

One vector per (neuron, seed) row, all rows in one batch through `NeuronObjective` (blocks
S..T only), each step `circuitforge.patchscope.recipe.step` (the recipe the single-neuron run
takes), with the hinge at each neuron's own natural maximum. The loop's whole state
(X, Adam's moments, the step, the activation history) is a `ChunkState`, so a sweep can save
it after any step and continue from it with nothing redone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.recipe import Recipe, step


@dataclass
class ChunkState:
    """Where one chunk's optimisation stands: everything needed to continue it exactly."""

    neurons: list[int]  # per row
    seeds: list[int]  # per row
    step: int
    x: Float[Tensor, "rows d_model"]
    optimizer: dict  # torch.optim.Adam's state_dict
    history: list[list[float]] = field(default_factory=list)  # activation per step and row

    def to_dict(self) -> dict:
        return {
            "neurons": self.neurons,
            "seeds": self.seeds,
            "step": self.step,
            "x": self.x.detach().cpu(),
            "optimizer": self.optimizer,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ChunkState:
        return cls(d["neurons"], d["seeds"], d["step"], d["x"], d["optimizer"], d["history"])


def initial_rows(
    baseline: Float[Tensor, " d_model"], typical_norm: float, seeds: list[int], noise: float
) -> Float[Tensor, "rows d_model"]:
    """Seed 0 starts at the baseline (the recipe); seed s > 0 at the baseline plus a seeded
    Gaussian of norm `noise` x the typical norm, so seeds can disagree."""
    rows = []
    for seed in seeds:
        row = baseline.float().clone()
        if seed != 0:
            g = torch.Generator().manual_seed(seed)
            direction = torch.randn(baseline.shape[-1], generator=g)
            row += direction * (noise * typical_norm / direction.norm())
        rows.append(row)
    return torch.stack(rows)


def optimise_chunk(
    objective: NeuronObjective,
    state: ChunkState,
    steps: int,
    recipe: Recipe,
    typical_norm: float,
    targets: Float[Tensor, " rows"],
    on_step: Callable[[ChunkState], None] | None = None,
) -> ChunkState:
    """Continue `state` until `steps` steps of `recipe` are done (`recipe.step`, the one step
    the single-neuron run takes too); `on_step` sees the state after each one."""
    x = torch.nn.Parameter(state.x.detach().clone().float())
    device = objective.prefix.device
    x.data = x.data.to(device)
    optimizer = recipe.make_optimizer(x, typical_norm)
    if state.optimizer:
        optimizer.load_state_dict(state.optimizer)
    neurons: Int[Tensor, " rows"] = torch.tensor(state.neurons)
    targets = targets.to(device)
    with torch.enable_grad():
        while state.step < steps:
            done = step(recipe, objective, x, optimizer, neurons, targets, typical_norm, state.step)
            state = ChunkState(
                state.neurons,
                state.seeds,
                state.step + 1,
                x.detach().cpu().clone(),
                optimizer.state_dict(),
                state.history + [done.activations.cpu().tolist()],
            )
            if on_step is not None:
                on_step(state)
    return state


@torch.no_grad()
def final_activations(
    objective: NeuronObjective, x: Float[Tensor, "rows d_model"], neurons: list[int]
) -> list[float]:
    return objective(x.to(objective.prefix.device), torch.tensor(neurons)).cpu().tolist()

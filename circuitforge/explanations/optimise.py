"""The gradient Patchscope's optimisation for a chunk of neurons, as a plain loop.

One vector per (neuron, seed) row, all rows in one batch through `NeuronObjective` (blocks
S..T only), each step `circuitforge.patchscope.recipe.step` (the recipe the single-neuron run
takes), with the hinge at each neuron's own natural maximum. The loop's whole state
(X, Adam's moments, the step, the activation history) is a `ChunkState`, so a sweep can save
it after any step and continue from it with nothing redone.

With `freeze_at_target` a row stops at the first step its activation reaches its target: it
keeps the vector that reached it (Adam's momentum does not carry it on), and later steps run
only the rows still below their targets; the chunk ends when none are left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitforge.patchscope.objective import CarrierObjective, NeuronObjective
from circuitforge.patchscope.recipe import Recipe, step

ChunkObjective = NeuronObjective | CarrierObjective


@dataclass
class ChunkState:
    """Where one chunk's optimisation stands: everything needed to continue it exactly."""

    neurons: list[int]  # per row
    seeds: list[int]  # per row
    step: int
    x: Float[Tensor, "rows d_model"]
    optimizer: dict  # torch.optim.Adam's state_dict
    history: list[list[float]] = field(default_factory=list)  # activation per step and row
    frozen: list[bool] | None = None  # per row: stopped at its target (freeze_at_target)

    def to_dict(self) -> dict:
        return {
            "neurons": self.neurons,
            "seeds": self.seeds,
            "step": self.step,
            "x": self.x.detach().cpu(),
            "optimizer": self.optimizer,
            "history": self.history,
            "frozen": self.frozen,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ChunkState:
        return cls(
            d["neurons"], d["seeds"], d["step"], d["x"], d["optimizer"], d["history"],
            d.get("frozen"),
        )  # fmt: skip


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
    objective: ChunkObjective,
    state: ChunkState,
    steps: int,
    recipe: Recipe,
    typical_norm: float,
    targets: Float[Tensor, " rows"],
    on_step: Callable[[ChunkState], None] | None = None,
    freeze_at_target: bool = False,
    other_maxima: Float[Tensor, " d_mlp"] | None = None,
    anchor_to: Float[Tensor, "rows d_model"] | None = None,
) -> ChunkState:
    """Continue `state` until `steps` steps of `recipe` are done (`recipe.step`, the one step
    the single-neuron run takes too), or, with `freeze_at_target`, until every row has reached
    its target; `on_step` sees the state after each step. `other_maxima`, `anchor_to`: the
    recipe's specificity and anchor terms (`recipe.step`)."""
    x = torch.nn.Parameter(state.x.detach().clone().float())
    device = objective.device
    x.data = x.data.to(device)
    optimizer = recipe.make_optimizer(x, typical_norm)
    if state.optimizer:
        optimizer.load_state_dict(state.optimizer)
    neurons: Int[Tensor, " rows"] = torch.tensor(state.neurons)
    targets = targets.to(device)
    anchor = None if anchor_to is None else anchor_to.to(device)
    frozen = torch.tensor(state.frozen or [False] * len(state.neurons))
    with torch.enable_grad():
        while state.step < steps and not bool(frozen.all()):
            if not freeze_at_target:
                done = step(
                    recipe, objective, x, optimizer, neurons, targets, typical_norm, state.step,
                    other_maxima=other_maxima, anchor_to=anchor,
                )  # fmt: skip
                activations = done.activations.cpu()
            else:
                activations = _step_active_rows(
                    recipe, objective, x, optimizer, neurons, targets, typical_norm, state,
                    frozen, other_maxima, anchor,
                )  # fmt: skip
                frozen = frozen | (activations >= targets.cpu())
            state = ChunkState(
                state.neurons,
                state.seeds,
                state.step + 1,
                x.detach().cpu().clone(),
                optimizer.state_dict(),
                state.history + [activations.tolist()],
                frozen.tolist() if freeze_at_target else None,
            )
            if on_step is not None:
                on_step(state)
    return state


class _ActiveRows:
    """The objective on the rows of X not frozen (X itself stays whole: Adam holds it)."""

    def __init__(self, objective: ChunkObjective, active: Int[Tensor, " active"]) -> None:
        self.objective, self.active = objective, active

    def layer_activations(self, vectors: Tensor) -> Tensor:
        return self.objective.layer_activations(vectors[self.active.to(vectors.device)])

    def __call__(self, vectors: Tensor, neurons: Tensor) -> Tensor:
        return self.objective(vectors[self.active.to(vectors.device)], neurons)


def _step_active_rows(
    recipe: Recipe,
    objective: ChunkObjective,
    x: torch.nn.Parameter,
    optimizer: torch.optim.Optimizer,
    neurons: Int[Tensor, " rows"],
    targets: Float[Tensor, " rows"],
    typical_norm: float,
    state: ChunkState,
    frozen: Tensor,
    other_maxima: Tensor | None,
    anchor: Tensor | None,
) -> Float[Tensor, " rows"]:
    """One step of the rows not frozen; a row whose activation (before the step) reaches its
    target keeps the vector that reached it. Returns every row's activation (a frozen row's:
    its last)."""
    active = (~frozen).nonzero()[:, 0]
    before = x.detach().clone()
    done = step(
        recipe,
        _ActiveRows(objective, active),
        x,
        optimizer,
        neurons[active],
        targets[active.to(targets.device)],
        typical_norm,
        state.step,
        other_maxima=other_maxima,
        anchor_to=anchor,
    )
    activations = torch.tensor(state.history[-1]) if state.history else torch.zeros(len(frozen))
    activations[active] = done.activations.cpu()
    keep = (frozen | (activations >= targets.cpu())).to(x.device)
    with torch.no_grad():
        x[keep] = before[keep]
    return activations


@torch.no_grad()
def final_activations(
    objective: ChunkObjective, x: Float[Tensor, "rows d_model"], neurons: list[int]
) -> list[float]:
    return objective(x.to(objective.device), torch.tensor(neurons)).cpu().tolist()

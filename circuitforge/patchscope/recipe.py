"""The gradient Patchscope's recipe: B vectors, each optimised to drive its own neuron.

The one place its math lives. `ResidualVectorModule` (one neuron, a Lightning fit) and the layer
sweep (`circuitforge/explanations/optimise.py`, many neurons in chunks) both build a `Recipe`
and call `step` once per optimisation step:

    activations = objective(x, neurons)          # blocks S..T with x injected (`NeuronObjective`)
    loss = recipe.loss(activations, targets)      # -sum(a), or the hinge sum(relu(target - a))
    Adam step on x at `recipe.adam_rate(...)`     # lr, or lr x typical norm / sqrt(d_model)
    recipe.project(x, typical_norm)               # the norm constraint (none, ball, sphere)

Two optional terms join the loss (both 0 by default: the old recipe): `specificity`, the mean
over the layer's other neurons of relu(a_j) / their natural maximum (X should not drive them
too), and `anchor`, ||x - x0||^2 / typical_norm^2 (X kept near where it started, e.g. its
neuron's top contexts' residuals).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitforge.numerics import check_finite
from circuitforge.patchscope.constraints import NormConstraint, constrain_norm

LrScale = Literal["absolute", "typical_norm"]
Objective = Callable[[Tensor, Tensor], Tensor]  # (vectors [B, d_model], neurons [B]) -> [B]


@dataclass(frozen=True)
class Recipe:
    """The optimiser's settings. The defaults are the real-model recipe (Gemma-3-270M,
    `scripts/patchscope_recipes.py`); the seed study's is `Recipe(0.05, "absolute", "none")`
    with no targets.

    lr: Adam's learning rate; with `lr_scale: typical_norm` a fraction of the typical norm.
    lr_scale: `absolute` (Adam steps of about `lr` per coordinate) or `typical_norm` (Adam's
        rate is `lr x typical_norm / sqrt(d_model)`: one step moves X by about `lr` of the
        typical residual norm, whatever the model's scale).
    norm_constraint: after each step, `none`, `ball` (rows longer than the typical norm are
        shrunk to it) or `sphere` (every row rescaled to it: the norm held at the typical norm).
    specificity: weight of the mean over the layer's other neurons j of relu(a_j) / max_j (their
        natural maxima, `other_maxima` of `step`; neurons whose maximum is <= 0 left out).
    anchor: weight of ||x - x0||^2 / typical_norm^2 per row (`anchor_to` of `step`: x0).
    """

    lr: float = 0.003
    lr_scale: LrScale = "typical_norm"
    norm_constraint: NormConstraint = "ball"
    specificity: float = 0.0
    anchor: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.lr_scale not in get_args(LrScale):
            raise ValueError(f"lr_scale must be one of {get_args(LrScale)}, got {self.lr_scale!r}")
        if self.norm_constraint not in get_args(NormConstraint):
            raise ValueError(
                f"norm_constraint must be one of {get_args(NormConstraint)}, "
                f"got {self.norm_constraint!r}"
            )
        for name in ("specificity", "anchor"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    def adam_rate(self, typical_norm: float, d_model: int) -> float:
        if self.lr_scale == "absolute":
            return self.lr
        return self.lr * typical_norm / d_model**0.5

    def loss(
        self, activations: Float[Tensor, " batch"], targets: Float[Tensor, " batch"] | None
    ) -> Float[Tensor, ""]:
        """Minus the activations (maximise, no bound), or the hinge `relu(target - a)` per row:
        no push once a row reaches its target. A sum keeps every vector's gradient its own."""
        if targets is None:
            return -activations.sum()
        return torch.relu(targets.to(activations) - activations).sum()

    def specificity_loss(
        self,
        layer: Float[Tensor, "batch d_mlp"],
        neurons: Int[Tensor, " batch"],
        other_maxima: Float[Tensor, " d_mlp"],
    ) -> Float[Tensor, ""]:
        """`specificity` x sum over rows of the mean over the other neurons j (max_j > 0) of
        relu(a_j) / max_j."""
        maxima = other_maxima.to(layer.device, torch.float32)
        usable = (maxima > 0)[None].expand_as(layer).clone()
        usable[torch.arange(len(neurons)), neurons.to(layer.device)] = False
        relative = torch.relu(layer.float()) / maxima.clamp_min(1e-12)
        per_row = (relative * usable).sum(-1) / usable.sum(-1).clamp_min(1)
        return self.specificity * per_row.sum()

    def anchor_loss(
        self,
        x: Float[Tensor, "batch d_model"],
        anchor_to: Float[Tensor, "batch d_model"],
        typical_norm: float,
    ) -> Float[Tensor, ""]:
        """`anchor` x sum over rows of ||x - x0||^2 / typical_norm^2."""
        gap = x - anchor_to.to(x)
        return self.anchor * (gap.pow(2).sum(-1) / typical_norm**2).sum()

    def make_optimizer(self, x: Tensor, typical_norm: float) -> torch.optim.Adam:
        return torch.optim.Adam([x], lr=self.adam_rate(typical_norm, x.shape[-1]))

    @torch.no_grad()
    def project(self, x: Float[Tensor, "batch d_model"], typical_norm: float) -> None:
        """The norm constraint, in place."""
        if self.norm_constraint != "none":
            x.copy_(constrain_norm(x, typical_norm, self.norm_constraint))

    def divergence_hint(self, typical_norm: float, d_model: int) -> str:
        rate = self.adam_rate(typical_norm, d_model)
        return (
            f"Lower lr (now {self.lr}: Adam steps of about {rate:.3g}) or bound X "
            "(norm_constraint: ball)."
        )


@dataclass(frozen=True)
class StepResult:
    activations: Float[Tensor, " batch"]  # before the step (detached)
    loss: Float[Tensor, ""]


def step(
    recipe: Recipe,
    objective: Objective,
    x: Float[Tensor, "batch d_model"],
    optimizer: torch.optim.Optimizer,
    neurons: Int[Tensor, " batch"],
    targets: Float[Tensor, " batch"] | None,
    typical_norm: float,
    step_number: int = 0,
    backward: Callable[[Tensor], None] = Tensor.backward,
    other_maxima: Float[Tensor, " d_mlp"] | None = None,
    anchor_to: Float[Tensor, "batch d_model"] | None = None,
) -> StepResult:
    """One optimisation step of `x` (a leaf the optimizer holds), in place.

    Stops with `Diverged` (naming `step_number`) when the activations or the loss, or after
    the step X, are not finite. `backward`: Lightning's `manual_backward` in a module.
    `other_maxima` (the layer's natural maxima) with `recipe.specificity`, `anchor_to` (x0)
    with `recipe.anchor`: refused when missing."""
    hint = recipe.divergence_hint(typical_norm, x.shape[-1])
    if recipe.specificity > 0:
        if other_maxima is None or not hasattr(objective, "layer_activations"):
            raise ValueError(
                "specificity > 0 needs the layer's natural maxima (an atlas) and an objective "
                "that reads the whole layer"
            )
        layer = objective.layer_activations(x)  # type: ignore[attr-defined]
        activations = layer.gather(1, neurons.to(layer.device)[:, None])[:, 0].float()
        loss = recipe.loss(activations, targets)
        loss = loss + recipe.specificity_loss(layer, neurons, other_maxima)
    else:
        activations = objective(x, neurons)
        loss = recipe.loss(activations, targets)
    if recipe.anchor > 0:
        if anchor_to is None:
            raise ValueError("anchor > 0 needs the vectors X is kept near (anchor_to)")
        loss = loss + recipe.anchor_loss(x, anchor_to, typical_norm)
    check_finite(step_number, hint, activation=activations, loss=loss)
    optimizer.zero_grad(set_to_none=True)
    backward(loss)
    optimizer.step()
    recipe.project(x, typical_norm)
    check_finite(step_number + 1, hint, X=x, x_norm=x.detach().norm(dim=-1))
    return StepResult(activations.detach(), loss.detach())

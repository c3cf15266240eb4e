"""From trainable parameters to edge coefficients in [0, 1].

- `clamp`: the coefficient is the parameter clamped to [0, 1], gradients pass straight through
  the clamp (Taggart's original).
- `sigmoid`: the coefficient is sigmoid(parameter).
- `hard_concrete`: a stretched, clamped concrete sample (Louizos et al. 2018; Edge Pruning);
  exact zeros and ones, the expected L0 norm is differentiable. Deterministic at evaluation.

Each gives the coefficients (`coefficients`), the expected fraction of edges kept (`density`,
what the sparsity term pushes down).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

Parameterisation = Literal["clamp", "sigmoid", "hard_concrete"]
PARAMETERISATIONS = ("clamp", "sigmoid", "hard_concrete")
BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1  # hard-concrete temperature and stretch (Louizos et al.)


def initial_parameters(kind: Parameterisation, n: int, init: float | None = None) -> Tensor:
    """Every edge starts (nearly) fully on: the circuit starts as the whole model."""
    default = {"clamp": 1.0, "sigmoid": 3.0, "hard_concrete": 3.0}[check(kind)]
    return torch.full((n,), default if init is None else init)


def check(kind: str) -> Parameterisation:
    if kind not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, got {kind!r}")
    return kind  # type: ignore[return-value]


def coefficients(
    kind: Parameterisation, theta: Float[Tensor, " edge"], sample: bool
) -> Float[Tensor, " edge"]:
    if kind == "clamp":
        clamped = theta.clamp(0, 1)
        return theta + (clamped - theta).detach()  # straight-through
    if kind == "sigmoid":
        return torch.sigmoid(theta)
    if sample:
        u = torch.rand_like(theta).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + theta) / BETA)
    else:
        s = torch.sigmoid(theta)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def density(kind: Parameterisation, theta: Float[Tensor, " edge"]) -> Float[Tensor, ""]:
    """Expected fraction of edges kept (differentiable)."""
    if kind == "clamp":
        return coefficients(kind, theta, sample=False).mean()
    if kind == "sigmoid":
        return torch.sigmoid(theta).mean()
    return torch.sigmoid(theta - BETA * math.log(-GAMMA / ZETA)).mean()


def project(kind: Parameterisation, theta: Tensor) -> None:
    """After an optimiser step: keep clamp parameters in [0, 1] (they would drift off forever
    under the straight-through gradient), and logits in a range where gradients still flow."""
    with torch.no_grad():
        theta.clamp_(0, 1) if kind == "clamp" else theta.clamp_(-10, 10)

"""From trainable parameters to edge coefficients in [0, 1].

- `clamp`: the coefficient is the parameter clamped to [0, 1], gradients pass straight through
  the clamp (Taggart's original).
- `sigmoid`: the coefficient is sigmoid(parameter).
- `hard_concrete`: a stretched, clamped concrete sample (Louizos et al. 2018; Edge Pruning);
  exact zeros and ones, the expected L0 norm is differentiable. Deterministic at evaluation.
- `ugs`: uniform gradient sampling (Li & Janson 2024, alestolfo/optimalablation
  `EdgeMaskUnifSampler.sample_modified_unif`): keep probability p = sigmoid(parameter); a sample
  is 1 - clamp((u - p) / w + 1/2, 0, 1) with u uniform and the window w = p(1 - p) (held
  constant), so most samples are exactly 0 or 1 and the gradient reaches p through the few in
  the window, scaled by w (their scale invariance). One sample per edge and step (UGS draws one
  per example; our masked forward applies one coefficient grid to the whole batch).
  Deterministic: p.

Each gives the coefficients (`coefficients`), the expected fraction of edges kept (`density`,
what the sparsity term pushes down).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

Parameterisation = Literal["clamp", "sigmoid", "hard_concrete", "ugs"]
PARAMETERISATIONS = ("clamp", "sigmoid", "hard_concrete", "ugs")
BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1  # hard-concrete temperature and stretch (Louizos et al.)


def initial_parameters(kind: Parameterisation, n: int, init: float | None = None) -> Tensor:
    """Every edge starts (nearly) fully on: the circuit starts as the whole model."""
    default = {"clamp": 1.0, "sigmoid": 3.0, "hard_concrete": 3.0, "ugs": 3.0}[check(kind)]
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
    if kind == "sigmoid" or (kind == "ugs" and not sample):
        return torch.sigmoid(theta)
    if kind == "ugs":
        return ugs_sample(theta, torch.rand_like(theta))
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
    if kind in ("sigmoid", "ugs"):
        return torch.sigmoid(theta).mean()
    return torch.sigmoid(theta - BETA * math.log(-GAMMA / ZETA)).mean()


def project(kind: Parameterisation, theta: Tensor) -> None:
    """After an optimiser step: keep clamp parameters in [0, 1] (they would drift off forever
    under the straight-through gradient), and logits in a range where gradients still flow."""
    with torch.no_grad():
        theta.clamp_(0, 1) if kind == "clamp" else theta.clamp_(-10, 10)


def ugs_sample(theta: Float[Tensor, " edge"], u: Float[Tensor, " edge"]) -> Float[Tensor, " edge"]:
    """UGS's sample for uniform draws `u`: 1 where u < p - w/2, 0 where u > p + w/2, linear in
    between; its gradient with respect to p is 1/w times w = 1 inside the window."""
    p = torch.sigmoid(theta)
    window = (p * (1 - p)).detach().clamp_min(1e-6)
    p_scaled = window * p - (window - 1) * p.detach()  # the value p, the gradient w dp
    return 1 - ((u - p_scaled) / window + 0.5).clamp(0, 1)

"""Warm start: initial edge parameters from any per-edge score (EAP, EAP-IG, ...).

As MIB's shared-task warm start for Edge Pruning (cisnlp/MIB-circuit-track,
`edge_pruning/importance_scores/scores_to_logalphas.py`, `scores_to_log_alphas`):
(a) salience = |score| (`absolute`) or the signed score; (b) ranks scaled to [0, 1], within each
destination layer (`per_layer`; the logits are one group); (c) keep probabilities
p = sigmoid((q - b) / tau), with b found by bisection so that their mean is 1 - `sparsity`;
(d) p inverted to the parameter that gives it: the hard-concrete log-alpha
beta * logit((p - gamma) / (zeta - gamma)) (their approximate inverse), logit(p) for sigmoid and
UGS, p itself for clamp; clipped to [-10, 10]. Their defaults: sparsity 0.9, tau 0.2.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from jaxtyping import Float
from torch import Tensor

from circuitforge.edges import parameterisation as param
from circuitforge.edges.graph import EdgeGraph

MODES = ("absolute", "signed")
EPS, CLIP = 1e-6, 10.0


def rank01(values: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """Ranks scaled to [0, 1] (0 = smallest; ties by position, stable)."""
    order = torch.sort(values, stable=True).indices
    ranks = torch.empty(values.numel(), dtype=torch.float64)
    ranks[order] = torch.arange(values.numel(), dtype=torch.float64)
    return ranks / max(1, values.numel() - 1)


def keep_probabilities(
    q: Float[Tensor, " n"], sparsity: float, tau: float, iters: int = 50
) -> Float[Tensor, " n"]:
    """sigmoid((q - b) / tau) with b bisected in [0, 1] so that the mean is 1 - sparsity
    (as close as b in [0, 1] allows)."""
    keep = 1.0 - sparsity
    low, high = 0.0, 1.0
    for _ in range(iters):
        middle = (low + high) / 2
        if torch.sigmoid((q - middle) / tau).mean().item() > keep:
            low = middle
        else:
            high = middle
    return torch.sigmoid((q - (low + high) / 2) / tau)


def parameters_for(kind: param.Parameterisation, p: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """The parameter whose (expected / deterministic) coefficient is about p."""
    param.check(kind)
    if kind == "clamp":
        return p.clamp(0, 1)
    if kind == "hard_concrete":
        p = ((p - param.GAMMA) / (param.ZETA - param.GAMMA)).clamp(EPS, 1 - EPS)
        return (param.BETA * (torch.log(p) - torch.log1p(-p))).clamp(-CLIP, CLIP)
    p = p.clamp(EPS, 1 - EPS)
    return (torch.log(p) - torch.log1p(-p)).clamp(-CLIP, CLIP)


def warm_start_parameters(
    graph: EdgeGraph,
    scores: Float[Tensor, " edge"],
    kind: param.Parameterisation,
    sparsity: float = 0.9,
    tau: float = 0.2,
    mode: str = "absolute",
    per_layer: bool = True,
) -> Float[Tensor, " edge"]:
    """Initial parameters for `kind` from per-edge `scores` (MIB's recipe; see the module)."""
    if mode not in MODES:
        raise ValueError(f"warm_start mode must be one of {MODES}, got {mode!r}")
    if not 0 <= sparsity < 1:
        raise ValueError(f"warm_start sparsity must be in [0, 1), got {sparsity}")
    if tau <= 0:
        raise ValueError(f"warm_start tau must be > 0, got {tau}")
    if scores.shape != (len(graph.edges),):
        raise ValueError(f"warm_start: {scores.numel()} scores for {len(graph.edges)} edges")
    values = scores.detach().cpu().double()
    values = values.abs() if mode == "absolute" else values
    groups: dict[int, list[int]] = defaultdict(list)
    for i, edge in enumerate(graph.edges):
        groups[edge.dest.layer if per_layer and edge.dest.kind != "logits" else -1].append(i)
    p = torch.empty(values.numel(), dtype=torch.float64)
    for members in groups.values():
        index = torch.tensor(members)
        p[index] = keep_probabilities(rank01(values[index]), sparsity, tau)
    return parameters_for(kind, p).float()

"""AUROC and the rank of one entry among many: one definition for S2 and S4."""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor


def auroc(positive: Float[Tensor, " p"], negative: Float[Tensor, " q"]) -> float | None:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney statistic over
    p x q); None when either side is empty."""
    if positive.numel() == 0 or negative.numel() == 0:
        return None
    a, b = positive.double()[:, None], negative.double()[None, :]
    return float(((a > b).double() + 0.5 * (a == b).double()).mean())


def rank_of(scores: Float[Tensor, " n"], index: int) -> dict[str, float | int | bool] | None:
    """Where entry `index` stands among `scores` (NaN scores count as the lowest): rank 1 is
    the top (ties with others do not lower it), its reciprocal, top-1 and top-10, and the AUROC
    of the entry against every other one. None when the entry itself is NaN."""
    value = float(scores[index])
    if math.isnan(value):
        return None
    others = torch.cat([scores[:index], scores[index + 1 :]]).double()
    others = torch.nan_to_num(others, nan=-math.inf)
    rank = 1 + int((others > value).sum())
    below = float((others < value).sum() + 0.5 * (others == value).sum())
    return {
        "rank": rank,
        "reciprocal_rank": 1.0 / rank,
        "top1": rank == 1,
        "top10": rank <= 10,
        "auroc": below / max(1, others.numel()),
    }

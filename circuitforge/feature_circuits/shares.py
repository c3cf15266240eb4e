"""How much of a feature circuit's attribution sits in the SAE error terms, per point.

Every node of a point (each feature and the error term, summed over positions or one per
position) has a score: its effect on the metric. At a residual point, which cuts the model, the
scores add up to about the metric's whole change (exactly, for integrated gradients with enough
steps). The error terms' share of that sum, and of the summed |score|, says how much of what
matters the SAE leaves unexplained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor


def error_shares(
    names: Sequence[str],
    features: Sequence[Float[Tensor, "*pos d_sae"]],
    errors: Sequence[Float[Tensor, "*pos"] | float],
) -> list[dict[str, float | str | None]]:
    """Per point: the summed feature and error scores (signed), the error terms' share of
    their sum (`error_share`: error / (features + error)) and of the summed |score|
    (`error_abs_share`: every feature node and error node counted); None where the
    denominator is 0 (JSON has no nan)."""
    if not len(names) == len(features) == len(errors):
        raise ValueError(
            f"error_shares: {len(names)} names, {len(features)} feature tables and "
            f"{len(errors)} error scores: give one of each per point"
        )
    rows: list[dict[str, float | str | None]] = []
    for name, f, e in zip(names, features, errors):
        f, e = f.double(), torch.as_tensor(e, dtype=torch.float64)
        if e.shape != f.shape[:-1]:
            raise ValueError(
                f"error_shares: point {name}'s error scores have shape {tuple(e.shape)}, "
                f"its features {tuple(f.shape)} (want one error score per position)"
            )
        feature_sum, error_sum = float(f.sum()), float(e.sum())
        total = feature_sum + error_sum
        magnitude = float(f.abs().sum() + e.abs().sum())
        rows.append(
            {
                "point": name,
                "feature_sum": feature_sum,
                "error_sum": error_sum,
                "error_share": error_sum / total if total != 0 else None,
                "error_abs_share": float(e.abs().sum()) / magnitude if magnitude else None,
            }
        )
    return rows

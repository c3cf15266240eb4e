"""MIB's curve: faithfulness of the top edges at fractions 0.1%..100%, and its areas (CPR, CMD)."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from circuitforge.edges.discrete import top_edges
from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.prepared import PreparedBatch, empty_distance, evaluate_coefficients

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def faithfulness_sweep(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    scores: Float[Tensor, " edge"],
    fractions: tuple[float, ...] = MIB_FRACTIONS,
    metric: str = "kl",
) -> dict:
    """MIB's curve: keep the top fraction of edges by score, faithfulness of each circuit.

    CPR = area under faithfulness(fraction) (trapezoid, higher is better), CMD = area under
    |1 - faithfulness| (lower is better), both over fractions 0.001..1 on a linear axis.
    Faithfulness is the recovered logit difference, or without answers 1 - d/d(empty) with d
    the `metric` (KL, or MSE for numerical outputs).
    """
    points = []
    for fraction in fractions:
        keep = top_edges(scores, round(fraction * scores.numel()))
        metrics = evaluate_coefficients(forward, prepared, keep.float())
        if "logit_diff_recovered" in metrics:
            f = metrics["logit_diff_recovered"]
        else:
            empty = empty_distance(prepared, metric)
            f = 1 - metrics[metric] / empty if empty > 0 else None  # undefined: see failures
        points.append(
            {"fraction": fraction, "n_edges": int(keep.sum()), "faithfulness": f, **metrics}
        )
    if any(p["faithfulness"] is None for p in points):
        return {"points": points, "cpr": None, "cmd": None}
    return {
        "points": points,
        **area_metrics([p["fraction"] for p in points], [p["faithfulness"] for p in points]),
    }


def area_metrics(x: list[float], f: list[float]) -> dict[str, float]:
    cpr = sum((x[i + 1] - x[i]) * (f[i] + f[i + 1]) / 2 for i in range(len(x) - 1))
    cmd = sum(
        (x[i + 1] - x[i]) * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2 for i in range(len(x) - 1)
    )
    return {"cpr": cpr, "cmd": cmd}

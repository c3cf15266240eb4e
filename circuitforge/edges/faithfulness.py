"""MIB's faithfulness curve and its areas, CPR and CMD, by MIB's own rules.

As in hannamw/MIB-circuit-track (`MIB_circuit_track/evaluation.py::evaluate_area_under_curve`,
`print_results.py`, commit b759df3) with EAP-IG's `Graph.apply_topn` and `Graph.prune`
(hannamw/EAP-IG 7af394a):

- at each fraction p of 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100% the circuit is the top
  `int(p * n_edges)` edges (rounded down), ranked by the score itself (`signed`) or by |score|
  (`absolute`), then pruned to the edges on some path from the input to the logits;
- faithfulness f = (m(C) - m(empty)) / (m(full) - m(empty)), m the mean logit difference, the
  removed edges carrying the ablation (MIB: counterfactual patching, our `interchange`);
- the areas are trapezoids over the fractions themselves (a linear axis from 0.001 to 1, not
  rescaled), f not clipped: `area_under` = sum of (x2 - x1)(f1 + f2)/2, `area_from_1` the same
  with |1 - f|;
- CPR is `area_under` of the signed ranking, CMD `area_from_1` of the absolute ranking (MIB's
  `print_results.py` reads `abs-False` results for CPR and `abs-True` for CMD; its issue 19).

A point's `n_edges` counts the circuit evaluated (fully pruned). MIB's `weighted_edge_counts`
can be larger: EAP-IG 7af394a's `prune` stops after one pass when `apply_topn` has already set
the nodes (fixed upstream in 55a2be2), and `evaluate_graph` prunes again before it evaluates.

Tasks without answer tokens (tracr's numerical programs) have no logit difference: there
f = 1 - d(C) / d(empty) with d the keep metric (KL or MSE to the full model); MIB has no such
tasks. Ties in the scores are broken by edge order (MIB's unstable argsort leaves them open).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuitforge.edges.graph import ComponentNode, EdgeGraph
from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.prepared import PreparedBatch, empty_distance, evaluate_coefficients

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
Ranking = Literal["signed", "absolute"]


def check_fractions(fractions: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """The fractions of a curve: each in (0, 1], increasing."""
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"a fraction of edges must be in (0, 1], got {fraction}")
    if list(fractions) != sorted(set(fractions)) or len(fractions) < 2:
        raise ValueError(f"fractions must be at least two, increasing, got {list(fractions)}")
    return tuple(float(f) for f in fractions)


def mib_edge_count(fraction: float, n_edges: int) -> int:
    """How many edges MIB keeps at `fraction`: `int(fraction * n_edges)`, rounded down."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of edges must be in (0, 1], got {fraction}")
    return int(fraction * n_edges)


def ranked_top(
    scores: Float[Tensor, " edge"], n_keep: int, ranking: Ranking
) -> Bool[Tensor, " edge"]:
    """The `n_keep` edges with the highest score (`signed`) or |score| (`absolute`), in float64
    so that no two different scores tie; ties broken by edge order."""
    if ranking not in ("signed", "absolute"):
        raise ValueError(f"ranking must be signed or absolute, got {ranking!r}")
    values = scores.detach().cpu().double()
    values = values.abs() if ranking == "absolute" else values
    keep = torch.zeros(values.numel(), dtype=torch.bool)
    order = torch.sort(values, descending=True, stable=True).indices
    keep[order[: max(0, min(int(n_keep), values.numel()))]] = True
    return keep


def connected(graph: EdgeGraph, keep: Bool[Tensor, " edge"]) -> Bool[Tensor, " edge"]:
    """EAP-IG's `Graph.prune`: repeatedly drop nodes without a kept incoming edge (the input
    always has one) or without a kept outgoing edge, and the edges of dropped nodes; what is
    left are the kept edges on some path from the input to the logits."""
    keep = keep.clone()
    edges = graph.edges
    while True:
        kept = [e for e, k in zip(edges, keep.tolist()) if k]
        has_in: set[ComponentNode] = {ComponentNode("input")} | {e.dest for e in kept}
        has_out: set[ComponentNode] = {ComponentNode("logits")} | {e.src for e in kept}
        alive = has_in & has_out
        trimmed = torch.tensor(
            [k and e.src in alive and e.dest in alive for e, k in zip(edges, keep.tolist())],
            dtype=torch.bool,
        )
        if torch.equal(trimmed, keep):
            return keep
        keep = trimmed


def area_metrics(x: list[float], f: list[float]) -> dict[str, float]:
    """MIB's trapezoids over x as given: `cpr` = area under f, `cmd` = area under |1 - f|."""
    cpr = sum((x[i + 1] - x[i]) * (f[i] + f[i + 1]) / 2 for i in range(len(x) - 1))
    cmd = sum(
        (x[i + 1] - x[i]) * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2 for i in range(len(x) - 1)
    )
    return {"cpr": cpr, "cmd": cmd}


@dataclass(frozen=True)
class FaithfulnessCurve:
    """One ranking's curve: per fraction the circuit's size and metrics, and its two areas
    (None where some faithfulness is undefined: the empty circuit equals the full model)."""

    ranking: Ranking
    points: list[dict] = field(repr=False)
    area_under: float | None
    area_from_1: float | None

    def to_json(self) -> dict:
        return {
            "ranking": self.ranking,
            "area_under": self.area_under,
            "area_from_1": self.area_from_1,
            "points": self.points,
        }


@dataclass(frozen=True)
class MibScores:
    """CPR (area under the signed ranking's curve) and CMD (area between 1 and the absolute
    ranking's curve); both curves kept (each has both areas)."""

    signed: FaithfulnessCurve
    absolute: FaithfulnessCurve

    @property
    def cpr(self) -> float | None:
        return self.signed.area_under

    @property
    def cmd(self) -> float | None:
        return self.absolute.area_from_1

    def to_json(self) -> dict:
        return {"signed": self.signed.to_json(), "absolute": self.absolute.to_json()}


def curve_of(
    graph: EdgeGraph,
    scores: Float[Tensor, " edge"],
    ranking: Ranking,
    evaluate: Callable[[Bool[Tensor, " edge"]], dict],
    fractions: tuple[float, ...] = MIB_FRACTIONS,
) -> FaithfulnessCurve:
    """MIB's curve for any circuit evaluation: at each fraction p the top `int(p * n)` edges by
    `ranking`, pruned as EAP-IG prunes, passed to `evaluate` (a dict with `faithfulness`, None
    where it is undefined, and whatever else the points should carry)."""
    fractions = check_fractions(fractions)
    n = scores.numel()
    points = []
    for fraction in fractions:
        keep = connected(graph, ranked_top(scores, mib_edge_count(fraction, n), ranking))
        points.append({"fraction": fraction, "n_edges": int(keep.sum()), **evaluate(keep)})
    values = [p["faithfulness"] for p in points]
    if any(v is None for v in values):
        return FaithfulnessCurve(ranking, points, None, None)
    areas = area_metrics(list(fractions), values)
    return FaithfulnessCurve(ranking, points, areas["cpr"], areas["cmd"])


def faithfulness_of(
    forward: MaskedForward, prepared: list[PreparedBatch], metric: str
) -> Callable[[Bool[Tensor, " edge"]], dict]:
    """A circuit's faithfulness on the prepared pairs (with its metrics): the recovered logit
    difference, or without answers 1 - d/d(empty) with d the `metric` (kl or mse)."""
    empty = empty_distance(prepared, metric)

    def evaluate(keep: Bool[Tensor, " edge"]) -> dict:
        metrics = evaluate_coefficients(forward, prepared, keep.float())
        if "logit_diff_recovered" in metrics:
            f = metrics["logit_diff_recovered"]
        else:
            f = 1 - metrics[metric] / empty if empty > 0 else None  # undefined: see failures
        return {"faithfulness": f, **metrics}

    return evaluate


def mib_scores(
    graph: EdgeGraph,
    scores: Float[Tensor, " edge"],
    evaluate: Callable[[Bool[Tensor, " edge"]], dict],
    fractions: tuple[float, ...] = MIB_FRACTIONS,
) -> MibScores:
    """Both of MIB's curves for these scores (one sweep when no score is negative: then the
    two rankings are the same)."""
    signed = curve_of(graph, scores, "signed", evaluate, fractions)
    if bool((scores >= 0).all()):
        absolute = FaithfulnessCurve("absolute", signed.points, *_areas(signed))
    else:
        absolute = curve_of(graph, scores, "absolute", evaluate, fractions)
    return MibScores(signed, absolute)


def _areas(curve: FaithfulnessCurve) -> tuple[float | None, float | None]:
    return curve.area_under, curve.area_from_1

"""A scored edge graph, evaluated: the discrete circuit, its faithfulness, MIB's curve, the
peer methods (`circuitforge/edges/peers/`) at the same size and by MIB's curves, and the match
with a known circuit.

`evaluate_circuit` is the one entry: a pure function of the masked forward, the prepared pairs,
the scores and coefficients and the keep rule, returning a `CircuitEvaluation` (`to_json()` is
the `circuit.json` written by `callbacks/circuit_export.py`). Its parts live beside it:
`prepared.py` (pairs and one circuit's metrics), `keep_rule.py` (which edges are kept),
`faithfulness.py` (MIB's curve, CPR, CMD), `ground_truth.py` (the match), `peers/` (random, EAP,
EAP-IG-inputs, EAP-IG-activations, exact patching: the scores compared).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuitforge.edges.discrete import node_names, prune_dead_ends, top_edges
from circuitforge.edges.export import edge_rows
from circuitforge.edges.faithfulness import MIB_FRACTIONS, MibScores, faithfulness_of, mib_scores
from circuitforge.edges.ground_truth import GroundTruthMatch, ground_truth_match
from circuitforge.edges.keep_rule import KeepRule, discrete_circuit
from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.peers.eap import edge_attribution_scores
from circuitforge.edges.peers.registry import LEARNED, PeerSettings, score_edges
from circuitforge.edges.peers.result import PeerScores
from circuitforge.edges.prepared import PreparedBatch, empty_distance, evaluate_coefficients

__all__ = [
    "CircuitEvaluation",
    "PeerReference",
    "PreparedBatch",
    "edge_attribution_scores",
    "evaluate_circuit",
    "peer_reference",
]


def circuit_failures(n_kept: int, n_edges: int, empty: float, metric: str) -> list[str]:
    """Why a discrete circuit means nothing, in words (empty when it is fine)."""
    failures = []
    if empty <= 1e-9:
        failures.append(
            f"the {metric} cannot tell the full model from the empty circuit ({metric} of the "
            f"empty circuit = {empty:.3g}): under this ablation no edge changes the output, or "
            "the metric is constant (a KL on one output); no circuit can be chosen by it"
        )
    if n_kept == 0:
        failures.append("the kept circuit is empty")
    elif n_kept == n_edges:
        failures.append(
            f"the kept circuit is the whole graph ({n_edges} edges): the scores did not separate "
            "the edges the task needs from the rest"
        )
    return failures


@dataclass(frozen=True)
class PeerReference:
    """A peer method's scores on the prepared pairs and (with `sweep`) their MIB curves:
    computed once per run, since the model is frozen."""

    peer: PeerScores
    sweep: MibScores | None

    @property
    def method(self) -> str:
        return self.peer.method


def peer_reference(
    method: str,
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    settings: PeerSettings,
    metric: str,
    sweep: bool,
    fractions: tuple[float, ...] = MIB_FRACTIONS,
) -> PeerReference:
    """Score every edge by `method`, then (with `sweep`) MIB's curves of its signed scores:
    CPR from the signed ranking, CMD from |score|, faithfulness by `metric` where the task has
    no answers."""
    peer = score_edges(method, forward, prepared, settings)
    evaluate = faithfulness_of(forward, prepared, metric)
    curves = mib_scores(forward.graph, peer.scores, evaluate, fractions) if sweep else None
    return PeerReference(peer, curves)


@dataclass(frozen=True)
class PeerComparison:
    """A peer's circuit of the same size as ours (its top |score|, pruned likewise), its
    metrics, MIB's CPR and CMD of its scores, and what scoring cost."""

    method: str
    n_edges: int
    metrics: dict
    sweep: MibScores | None
    nodes: list[str]
    ground_truth: GroundTruthMatch | None
    cost: dict

    def to_json(self) -> dict:
        out: dict = {"method": self.method, "n_edges": self.n_edges, **self.metrics}
        if self.sweep is not None:
            out |= {"cpr": self.sweep.cpr, "cmd": self.sweep.cmd}
        out["cost"] = self.cost
        out["nodes"] = self.nodes
        if self.ground_truth is not None:
            out["ground_truth_match"] = self.ground_truth.to_json()
        if self.sweep is not None:
            out["sweep"] = self.sweep.to_json()
        return out


def compare_peer(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    reference: PeerReference,
    n_kept: int,
    truth: set[str] | None,
) -> PeerComparison:
    """`reference`'s circuit of `n_kept` top |score| edges (dead ends pruned), evaluated."""
    graph = forward.graph
    magnitude = reference.peer.scores.abs()
    keep = prune_dead_ends(graph, top_edges(magnitude, n_kept))
    names = [e.name for e in graph.edges]
    return PeerComparison(
        method=reference.method,
        n_edges=int(keep.sum()),
        metrics=evaluate_coefficients(forward, prepared, keep.float()),
        sweep=reference.sweep,
        nodes=node_names(graph, keep),
        ground_truth=(
            ground_truth_match(names, magnitude, keep, truth) if truth is not None else None
        ),
        cost=reference.peer.cost_json(),
    )


@dataclass(frozen=True)
class CircuitEvaluation:
    """The discrete circuit and everything measured on it (`to_json()`: `circuit.json`).

    `keep` and `coefficients` are the tensors the writers draw from; they are not in the JSON.
    """

    metrics: dict
    failures: list[str]
    sweep: MibScores | None
    peers: list[PeerComparison]
    ground_truth: GroundTruthMatch | None
    graph: dict
    nodes: list[str]
    kept: list[str]
    n_edges_total: int
    edges: list[dict]
    keep: Bool[Tensor, " edge"]
    coefficients: Float[Tensor, " edge"]
    cost: dict | None = None

    @property
    def scores(self) -> list[float]:
        return [row["score"] for row in self.edges]

    def comparison(self) -> list[dict]:
        """One entry per method, ours first (named `LEARNED`), each with its `method` name, its
        circuit's size and metrics, CPR and CMD where swept, and its cost."""
        keys = ("n_edges", "kl", "mse", "logit_diff", "logit_diff_recovered", "cpr", "cmd")
        ours: dict = {"method": LEARNED} | {k: self.metrics[k] for k in keys if k in self.metrics}
        if self.cost is not None:
            ours["cost"] = self.cost
        return [ours] + [peer.to_json() for peer in self.peers]

    def to_json(self) -> dict:
        out: dict = {"metrics": self.metrics, "failure": "; ".join(self.failures) or None}
        if self.sweep is not None:
            out["sweep"] = self.sweep.to_json()
        if self.peers or self.cost is not None:
            out["comparison"] = self.comparison()
        if self.ground_truth is not None:
            out["ground_truth_match"] = self.ground_truth.to_json()
        return out | {
            "graph": self.graph,
            "nodes": self.nodes,
            "kept": self.kept,
            "n_edges_total": self.n_edges_total,
            "edges": self.edges,
        }


@torch.no_grad()
def evaluate_circuit(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    scores: Float[Tensor, " edge"],
    coefficients: Float[Tensor, " edge"],
    rule: KeepRule,
    sweep: bool = True,
    peers: Sequence[PeerReference] = (),
    truth: set[str] | None = None,
    fractions: tuple[float, ...] = MIB_FRACTIONS,
    importance: Float[Tensor, " edge"] | None = None,
    cost: dict | None = None,
) -> CircuitEvaluation:
    """Make the circuit discrete by `rule`, evaluate it on `prepared`; with `sweep` MIB's curve
    of `scores`; with `peers` each peer's circuit of the same size (and its curves); with `truth`
    (edge names) the match.

    Args:
        forward: the masked forward of the frozen model (its graph names the edges).
        prepared: the evaluation pairs with their ablation runs.
        scores: per edge, higher = more in the circuit (what the keep rule ranks).
        coefficients: per edge, the learned coefficients (the threshold rule reads them).
        rule: the keep rule.
        sweep: evaluate MIB's curves of `importance` and report CPR and CMD.
        peers: the peer methods' scores (and curves, `peer_reference`), to compare.
        truth: the true circuit's edge names.
        fractions: the curves' fractions of edges.
        importance: per edge, the score MIB ranks (signed for CPR, |.| for CMD); default
            `scores`. A method whose scores are not signed importances (a logit of a keep
            probability) gives a non-negative one here, so that |.| does not reorder it.
        cost: what finding `scores` cost (steps, seconds, forward+backward equivalents), for
            our entry of the comparison.
    """
    graph = forward.graph
    scores, coefficients = scores.detach().cpu(), coefficients.detach().cpu()
    keep = discrete_circuit(forward, prepared, scores, coefficients, rule)
    n_kept = int(keep.sum())
    metrics: dict = {"n_edges": n_kept, **evaluate_coefficients(forward, prepared, keep.float())}
    metrics["keep_metric"] = rule.metric
    empty = empty_distance(prepared, rule.metric)
    failures = circuit_failures(n_kept, len(graph.edges), empty, rule.metric)
    metrics["faithfulness"] = metrics.get("logit_diff_recovered", None)
    curves = None
    if sweep:
        ranked = scores if importance is None else importance.detach().cpu()
        curves = mib_scores(
            graph, ranked, faithfulness_of(forward, prepared, rule.metric), fractions
        )
        metrics |= {"cpr": curves.cpr, "cmd": curves.cmd}
    names = [e.name for e in graph.edges]
    comparisons = [compare_peer(forward, prepared, peer, n_kept, truth) for peer in peers]
    return CircuitEvaluation(
        metrics=metrics,
        failures=failures,
        sweep=curves,
        peers=comparisons,
        ground_truth=(
            ground_truth_match(names, scores, keep, truth) if truth is not None else None
        ),
        graph=graph.describe(),
        nodes=node_names(graph, keep),
        kept=[n for n, k in zip(names, keep.tolist()) if k],
        n_edges_total=len(names),
        edges=edge_rows(graph, scores, coefficients, keep),
        keep=keep,
        coefficients=coefficients,
        cost=cost,
    )

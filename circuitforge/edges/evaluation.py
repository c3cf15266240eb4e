"""A scored edge graph, evaluated: the discrete circuit, its faithfulness, MIB's curve, EAP at
the same size, and the match with a known circuit.

`evaluate_circuit` is the one entry: a pure function of the masked forward, the prepared pairs,
the scores and coefficients and the keep rule, returning a `CircuitEvaluation` (`to_json()` is
the `circuit.json` written by `callbacks/circuit_export.py`). Its parts live beside it:
`prepared.py` (pairs and one circuit's metrics), `keep_rule.py` (which edges are kept),
`faithfulness.py` (MIB's curve, CPR, CMD), `ground_truth.py` (the match).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuitforge.edges.discrete import node_names, prune_dead_ends, top_edges
from circuitforge.edges.export import edge_rows
from circuitforge.edges.faithfulness import MIB_FRACTIONS, MibScores, faithfulness_of, mib_scores
from circuitforge.edges.ground_truth import GroundTruthMatch, ground_truth_match
from circuitforge.edges.keep_rule import KeepRule, discrete_circuit
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.objectives import read_log_probs
from circuitforge.edges.prepared import PreparedBatch, empty_distance, evaluate_coefficients

__all__ = ["CircuitEvaluation", "EapReference", "PreparedBatch", "evaluate_circuit"]


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


def edge_attribution_scores(
    forward: MaskedForward, prepared: list[PreparedBatch], objective: str
) -> Float[Tensor, " edge"]:
    """Edge attribution patching (Syed et al.): d(metric)/d(coefficient) at all coefficients 1.

    With the masked forward this is exactly (out_s - ablated_out_s) . d(metric)/d(input_slot),
    the EAP score, for every edge in one backward pass per batch. Signed: positive where the
    edge carries the metric up (MIB's sign: EAP-IG attributes the loss -metric to the corrupted
    minus clean activations).
    """
    n = len(forward.graph.edges)
    total = torch.zeros(n)
    for p in prepared:
        coefficients = torch.ones(n, requires_grad=True)
        logits = forward(p.batch.clean, p.ablated, dense_coefficients(forward.graph, coefficients))
        if objective == "logit_diff":
            metric = p.logit_diff(logits).mean()
        else:  # the KL's gradient vanishes at the full model: use the full model's prediction
            predicted = p.full_log_probs.argmax(-1, keepdim=True)
            metric = read_log_probs(logits, p.batch.read).gather(-1, predicted).mean()
        (grad,) = torch.autograd.grad(metric, coefficients)
        total += grad.detach().cpu()
    return total / max(1, len(prepared))


@dataclass(frozen=True)
class EapReference:
    """Edge attribution patching's signed scores on the prepared pairs and (with `sweep`)
    their MIB curves: computed once per run, since the model is frozen."""

    scores: Float[Tensor, " edge"]
    sweep: MibScores | None


def eap_reference(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    objective: str,
    metric: str,
    sweep: bool,
    fractions: tuple[float, ...] = MIB_FRACTIONS,
) -> EapReference:
    with torch.enable_grad():
        scores = edge_attribution_scores(forward, prepared, objective)
    evaluate = faithfulness_of(forward, prepared, metric)
    curves = mib_scores(forward.graph, scores, evaluate, fractions) if sweep else None
    return EapReference(scores, curves)


@dataclass(frozen=True)
class EapComparison:
    """EAP's circuit of the same size as ours (the top |score|, pruned likewise), its metrics,
    and MIB's CPR and CMD of EAP's scores."""

    n_edges: int
    metrics: dict
    sweep: MibScores | None
    nodes: list[str]
    ground_truth: GroundTruthMatch | None

    def to_json(self) -> dict:
        out: dict = {"n_edges": self.n_edges, **self.metrics}
        if self.sweep is not None:
            out |= {"cpr": self.sweep.cpr, "cmd": self.sweep.cmd}
        out["nodes"] = self.nodes
        if self.ground_truth is not None:
            out["ground_truth_match"] = self.ground_truth.to_json()
        if self.sweep is not None:
            out["sweep"] = self.sweep.to_json()
        return out


@dataclass(frozen=True)
class CircuitEvaluation:
    """The discrete circuit and everything measured on it (`to_json()`: `circuit.json`).

    `keep` and `coefficients` are the tensors the writers draw from; they are not in the JSON.
    """

    metrics: dict
    failures: list[str]
    sweep: MibScores | None
    eap: EapComparison | None
    ground_truth: GroundTruthMatch | None
    graph: dict
    nodes: list[str]
    kept: list[str]
    n_edges_total: int
    edges: list[dict]
    keep: Bool[Tensor, " edge"]
    coefficients: Float[Tensor, " edge"]

    @property
    def scores(self) -> list[float]:
        return [row["score"] for row in self.edges]

    def to_json(self) -> dict:
        out: dict = {"metrics": self.metrics, "failure": "; ".join(self.failures) or None}
        if self.sweep is not None:
            out["sweep"] = self.sweep.to_json()
        if self.eap is not None:
            out["eap"] = self.eap.to_json()
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
    eap: EapReference | None = None,
    truth: set[str] | None = None,
    fractions: tuple[float, ...] = MIB_FRACTIONS,
    importance: Float[Tensor, " edge"] | None = None,
) -> CircuitEvaluation:
    """Make the circuit discrete by `rule`, evaluate it on `prepared`; with `sweep` MIB's curve
    of `scores`; with `eap` EAP's circuit of the same size; with `truth` (edge names) the match.

    Args:
        forward: the masked forward of the frozen model (its graph names the edges).
        prepared: the evaluation pairs with their ablation runs.
        scores: per edge, higher = more in the circuit (what the keep rule ranks).
        coefficients: per edge, the learned coefficients (the threshold rule reads them).
        rule: the keep rule.
        sweep: evaluate MIB's curves of `importance` and report CPR and CMD.
        eap: edge attribution patching's scores (and curves), to compare at the same size.
        truth: the true circuit's edge names.
        fractions: the curves' fractions of edges.
        importance: per edge, the score MIB ranks (signed for CPR, |.| for CMD); default
            `scores`. A method whose scores are not signed importances (a logit of a keep
            probability) gives a non-negative one here, so that |.| does not reorder it.
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
    comparison = None
    if eap is not None:
        eap_keep = prune_dead_ends(graph, top_edges(eap.scores.abs(), n_kept))
        comparison = EapComparison(
            n_edges=int(eap_keep.sum()),
            metrics=evaluate_coefficients(forward, prepared, eap_keep.float()),
            sweep=eap.sweep if sweep else None,
            nodes=node_names(graph, eap_keep),
            ground_truth=(
                ground_truth_match(names, eap.scores.abs(), eap_keep, truth)
                if truth is not None
                else None
            ),
        )
    return CircuitEvaluation(
        metrics=metrics,
        failures=failures,
        sweep=curves,
        eap=comparison,
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
    )

"""A feature circuit over a dataset of prompt pairs: node scores, node selection, edges and the
ablation check, composed from the pure pieces (`attribution`, `edges`, `ablation`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.ablation import Ablation
from circuitforge.batches import PairBatch
from circuitforge.edges.objectives import last_read_position
from circuitforge.feature_circuits.ablation import (
    complement,
    everything,
    node_masks,
    nothing,
    spliced_metric,
)
from circuitforge.feature_circuits.attribution import (
    NodeEffects,
    PointState,
    ReadMetric,
    clean_pass,
    ig_gradients,
    mean_states,
    node_effects,
    point_states,
    zero_states,
)
from circuitforge.feature_circuits.edges import KeptNodes, edge_effects, embedding_edges
from circuitforge.feature_circuits.points import SAEPoint
from circuitforge.model import hooks
from circuitforge.model.forward import embed

Method = Literal["attribution", "ig"]


def pair_metric(batch: PairBatch) -> ReadMetric:
    """Logit difference (answer - wrong answer) at each pair's last read position."""
    answer, wrong = batch.answer, batch.wrong_answer
    if (answer < 0).any():
        raise ValueError("this task has no answer tokens: feature circuits need them")

    def difference(logits: Tensor) -> Tensor:
        pick = torch.stack([answer, wrong], 1).to(logits.device)
        read = logits.gather(1, pick)
        return read[:, 0] - read[:, 1]

    return ReadMetric(last_read_position(batch.read), difference)


def ablated_states(
    model: HookedTransformer,
    points: list[SAEPoint],
    batch: PairBatch,
    clean: list[PointState],
    ablation: Ablation,
) -> list[PointState]:
    if ablation == "interchange":
        return point_states(model, batch.corrupt, points)
    if ablation == "mean":
        return mean_states(points, clean)
    return zero_states(points, clean)


@dataclass
class BatchStates:
    """What a batch's edges need: its clean and ablated states and the metric's gradient at
    every point (None after IG: its averaged gradients are not the edges' one-step ones)."""

    clean: list[PointState]
    ablated: list[PointState]
    grads: list[Tensor] | None

    def nbytes(self) -> int:
        tensors = [t for s in self.clean + self.ablated for t in (s.x, s.f, s.err)]
        return sum(t.numel() * t.element_size() for t in tensors + (self.grads or []))


@dataclass
class BatchAttribution:
    metric: Float[Tensor, " batch"]
    effects: list[NodeEffects]
    states: BatchStates


def batch_attribution(
    model: HookedTransformer,
    points: list[SAEPoint],
    batch: PairBatch,
    ablation: Ablation = "interchange",
    method: Method = "attribution",
    steps: int = 10,
) -> BatchAttribution:
    metric = pair_metric(batch)
    value, clean, grads = clean_pass(model, batch.clean, points, metric, method != "ig")
    ablated = ablated_states(model, points, batch, clean, ablation)
    if method == "ig":  # the clean pass gave the metric's value and states: no backward
        averaged = ig_gradients(model, batch.clean, points, metric, clean, ablated, steps)
        effects = node_effects(points, clean, ablated, averaged)
    else:
        assert grads is not None  # the clean pass ran the backward
        effects = node_effects(points, clean, ablated, grads)
    return BatchAttribution(value, effects, BatchStates(clean, ablated, grads))


class NodeScores:
    """Node effects summed over positions, averaged over examples."""

    def __init__(self, points: list[SAEPoint]) -> None:
        self.features = [torch.zeros(p.d_sae, dtype=torch.float64) for p in points]
        self.error = [torch.zeros((), dtype=torch.float64) for _ in points]
        self.examples = 0

    def add(self, effects: list[NodeEffects]) -> None:
        for i, e in enumerate(effects):
            self.features[i] += e.features.sum((0, 1)).double().cpu()
            self.error[i] += e.error.sum().double().cpu()
        self.examples += effects[0].error.shape[0]

    def mean(self) -> tuple[list[Tensor], list[float]]:
        n = max(self.examples, 1)
        return [f / n for f in self.features], [float(e) / n for e in self.error]


def select_nodes(
    features: list[Tensor], errors: list[float], per_point: int | None, threshold: float | None
) -> list[KeptNodes]:
    """Per point, the features with |score| >= threshold, at most `per_point` of them (largest
    first); the error term by the same rule."""
    kept = []
    for f, e in zip(features, errors):
        order = f.abs().argsort(descending=True)
        if threshold is not None:
            order = order[f.abs()[order] >= threshold]
        order = order[: per_point if per_point is not None else len(order)]
        order = order[f[order] != 0]  # a feature that never moved is not a node
        keep_error = threshold is None or abs(e) >= threshold
        kept.append(KeptNodes([int(i) for i in order], keep_error))
    return kept


def summed_edges(
    model: HookedTransformer,
    points: list[SAEPoint],
    batches: list[PairBatch],
    kept: list,
    ablation: Ablation = "interchange",
    edges=edge_effects,
    states: list[BatchStates | None] | None = None,
) -> dict[tuple[int, int], Tensor]:
    """Edge effects averaged over every example of `batches` (`edges`: `edge_effects` for
    summed nodes, `positions.position_edges` for per-position ones). `states[i]`, where
    given, are batch i's from the attribution pass, reused instead of recomputed."""
    total: dict[tuple[int, int], Tensor] = {}
    examples = 0
    for i, batch in enumerate(batches):
        known = complete_states(model, points, batch, states[i] if states else None, ablation)
        found = edges(model, batch.clean, points, known.clean, known.ablated, known.grads, kept)
        for key, table in found.items():
            total[key] = total.get(key, 0) + table
        examples += batch.clean.shape[0]
    return {k: v / max(examples, 1) for k, v in total.items()}


def complete_states(
    model: HookedTransformer,
    points: list[SAEPoint],
    batch: PairBatch,
    known: BatchStates | None,
    ablation: Ablation = "interchange",
) -> BatchStates:
    """A batch's states with the one-step gradients: `known` (the attribution pass's) as it is,
    its gradients filled in after IG, or all recomputed when it was dropped (None)."""
    if known is not None and known.grads is not None:
        return known
    _, clean, grads = clean_pass(model, batch.clean, points, pair_metric(batch))
    if known is None:
        return BatchStates(clean, ablated_states(model, points, batch, clean, ablation), grads)
    return BatchStates(known.clean, known.ablated, grads)


def with_gradients(
    model: HookedTransformer,
    points: list[SAEPoint],
    batches: list[PairBatch],
    states: list[BatchStates | None],
) -> list[BatchStates | None]:
    """`states` with the one-step gradients filled in where an IG pass left them out (so the
    edges and the embedding edges share one backward per batch); dropped states stay None."""
    return [
        None if known is None else complete_states(model, points, batch, known)
        for batch, known in zip(batches, states)
    ]


def summed_embedding_edges(
    model: HookedTransformer,
    points: list[SAEPoint],
    batches: list[PairBatch],
    nodes: list,
    ablation: Ablation = "interchange",
    states: list[BatchStates | None] | None = None,
) -> Tensor | None:
    """Edges from each position's token embedding to the first point's `nodes` ((position,
    feature) pairs), averaged over every example of `batches`: [pos, nodes]. None when the
    first point is the embedding itself (blocks.0.hook_resid_pre)."""
    if points[0].hook_name == hooks.resid_pre(0) or not nodes:
        return None
    total, examples = torch.zeros(()), 0
    for i, batch in enumerate(batches):
        known = complete_states(model, points, batch, states[i] if states else None, ablation)
        assert known.grads is not None  # complete_states adds the one-step gradients
        state, grad = known.clean[0], known.grads[0]
        clean_embedding, _ = embed(model, batch.clean)
        if ablation == "interchange":
            ablated, _ = embed(model, batch.corrupt)
        elif ablation == "mean":
            ablated = clean_embedding.mean(0, keepdim=True).expand_as(clean_embedding)
        else:
            ablated = torch.zeros_like(clean_embedding)
        total = total + embedding_edges(model, batch.clean, points[0], state, grad, nodes, ablated)
        examples += batch.clean.shape[0]
    return total / max(examples, 1)


def circuit_quality(
    model: HookedTransformer,
    points: list[SAEPoint],
    batches: list[PairBatch],
    kept: list[KeptNodes],
    ablation: Ablation = "interchange",
) -> dict[str, float]:
    """Mean metric of the full model, the empty circuit, the circuit C and its complement M \\ C
    over `batches`; faithfulness and completeness (Marks et al. 2024)."""
    return masks_quality(model, points, batches, node_masks(points, kept), ablation)


def masks_quality(
    model: HookedTransformer,
    points: list[SAEPoint],
    batches: list[PairBatch],
    keep: list,
    ablation: Ablation = "interchange",
) -> dict[str, float]:
    """`circuit_quality` of the circuit given as masks (`ablation.node_masks`, or per position
    `positions.position_masks`)."""
    settings = {
        "full": everything(points),
        "empty": nothing(points),
        "circuit": keep,
        "complement": complement(keep),
    }
    sums = dict.fromkeys(settings, 0.0)
    examples = 0
    for batch in batches:
        clean = point_states(model, batch.clean, points)
        ablated = ablated_states(model, points, batch, clean, ablation)
        for name, masks in settings.items():
            values = spliced_metric(model, batch.clean, points, pair_metric(batch), ablated, masks)
            sums[name] += float(values.sum())
        examples += batch.clean.shape[0]
    m = {k: v / max(examples, 1) for k, v in sums.items()}
    span = m["full"] - m["empty"]
    return {
        "metric_full": m["full"],
        "metric_empty": m["empty"],
        "metric_circuit": m["circuit"],
        "metric_complement": m["complement"],
        "faithfulness": (m["circuit"] - m["empty"]) / span,
        "completeness": (m["complement"] - m["empty"]) / span,
    }

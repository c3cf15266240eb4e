"""Feature circuits with one node per (feature, token position), for prompts whose positions
align (a single prompt, or prompts of one template): the nodes of an attribution graph.

The maths is that of the summed circuit (`attribution`, `edges`, `ablation`) without the sum
over positions: a node's score is its effect at its own position, averaged over the prompts;
the edge (u at i) -> (d at j) is the summed edge's term for those two positions. Summing a
per-position table over positions gives the summed one (the tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.feature_circuits.attribution import NodeEffects, PointState
from circuitforge.feature_circuits.edges import ERROR, edge_gradients
from circuitforge.feature_circuits.points import SAEPoint


@dataclass(frozen=True)
class PositionNodes:
    """The nodes of one point in the circuit: (position, feature) pairs, `ERROR` for the
    error term at that position."""

    nodes: list[tuple[int, int]]


class PositionScores:
    """Node effects per position, averaged over examples (every batch of the same width)."""

    def __init__(self, points: list[SAEPoint]) -> None:
        self.points, self.examples = points, 0
        self.width: int | None = None
        self.features: list[Tensor] = []
        self.error: list[Tensor] = []
        self.activation: list[Tensor] = []  # clean feature activations, summed over examples

    def add(self, effects: list[NodeEffects], clean: list[PointState]) -> None:
        width = effects[0].error.shape[1]
        if self.width is None:
            self.width = width
            self.features = [torch.zeros(width, p.d_sae, dtype=torch.float64) for p in self.points]
            self.activation = [torch.zeros_like(f) for f in self.features]
            self.error = [torch.zeros(width, dtype=torch.float64) for _ in self.points]
        elif width != self.width:
            raise ValueError(
                f"per-position nodes need prompts of one length: a batch has {width} positions, "
                f"the first had {self.width} (use one template: data.init_args.template)"
            )
        for i, (e, c) in enumerate(zip(effects, clean)):
            self.features[i] += e.features.sum(0).double().cpu()
            self.error[i] += e.error.sum(0).double().cpu()
            self.activation[i] += c.f.sum(0).double().cpu()
        self.examples += effects[0].error.shape[0]

    def scored_width(self) -> int:
        """The prompts' width (positions), once a batch was added."""
        if self.width is None:
            raise ValueError("no prompts were scored")
        return self.width

    def mean(self) -> tuple[list[Tensor], list[Tensor]]:
        n = max(self.examples, 1)
        return [f / n for f in self.features], [e / n for e in self.error]

    def mean_activations(self) -> list[Float[Tensor, "pos d_sae"]]:
        """Each feature's clean activation at each position, averaged over the prompts."""
        return [a / max(self.examples, 1) for a in self.activation]


def select_position_nodes(
    features: list[Float[Tensor, "pos d_sae"]],
    errors: list[Float[Tensor, " pos"]],
    per_point: int | None,
    threshold: float | None,
) -> list[PositionNodes]:
    """Per point, the (position, feature) and (position, error) nodes with the largest |score|:
    at most `per_point`, each >= `threshold`; a node that never moved is not a node."""
    kept = []
    for f, e in zip(features, errors):
        scores = torch.cat([f, e[:, None]], dim=1)  # column d_sae = the error term
        flat = scores.flatten()
        order = flat.abs().argsort(descending=True)
        if threshold is not None:
            order = order[flat.abs()[order] >= threshold]
        order = order[flat[order] != 0][: per_point if per_point is not None else None]
        width = scores.shape[1]
        nodes = []
        for index in order.tolist():
            position, column = divmod(index, width)
            nodes.append((position, ERROR if column == width - 1 else column))
        kept.append(PositionNodes(sorted(nodes)))
    return kept


def position_masks(
    points: list[SAEPoint], kept: list[PositionNodes], width: int
) -> list[tuple[Tensor, Tensor]]:
    """Per point: a [pos, d_sae] mask of kept features and a [pos] mask of kept error terms."""
    masks = []
    for p, k in zip(points, kept):
        mask = torch.zeros(width, p.d_sae, dtype=torch.bool)
        error = torch.zeros(width, dtype=torch.bool)
        for position, feature in k.nodes:
            if feature == ERROR:
                error[position] = True
            else:
                mask[position, feature] = True
        masks.append((mask, error))
    return masks


def position_edges(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    clean: list[PointState],
    ablated: list[PointState],
    grads: list[Float[Tensor, "batch pos d_in"]],
    kept: list[PositionNodes],
) -> dict[tuple[int, int], Float[Tensor, "up down"]]:
    """Edge effects summed over examples, per (upstream, downstream) point pair: rows follow
    `kept[p].nodes`, columns `kept[q].nodes` (as `edges.edge_effects`, position by position)."""
    out = {}
    for p, q, g in edge_gradients(model, tokens, points, clean, grads, [k.nodes for k in kept]):
        ups = kept[p].nodes
        if not ups:
            continue
        device = g.device
        up_pos = torch.tensor([i for i, _ in ups], device=device)
        is_err = torch.tensor([f == ERROR for _, f in ups], device=device)
        feats = torch.tensor([0 if f == ERROR else f for _, f in ups], device=device)
        g = g[:, :, up_pos]  # [down nodes, batch, up nodes, d_in]: at each up node's position
        df = ablated[p].f[:, up_pos, feats] - clean[p].f[:, up_pos, feats]  # [batch, up nodes]
        feature_terms = torch.einsum("nbud,ud,bu->un", g, points[p].decoder[feats], df)
        derr = ablated[p].err[:, up_pos] - clean[p].err[:, up_pos]
        error_terms = torch.einsum("nbud,bud->un", g, derr)
        out[(p, q)] = torch.where(is_err[:, None], error_terms, feature_terms).detach().cpu()
    return out

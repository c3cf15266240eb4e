"""Edges between kept nodes of neighbouring points, with the residual-stream correction.

The edge u -> d is the effect on the metric of moving u to its ablated value, carried through
d only: `(u_abl - u) * d/du [ (dm/dd) * d ]`, with dm/dd held fixed (Marks et al. 2024). Upstream
of a point q are the last residual point before it and the sublayer points after that one.
Moving u also moves d through the sublayer points between them, and those paths are counted by
the edges u -> s -> d already; so the outputs of the points strictly between u and d are held
at their clean values (stop-gradient), and only the direct path remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.feature_circuits.attribution import PointState, flat
from circuitforge.feature_circuits.points import SAEPoint, upstream_points

ERROR = -1  # the node index of a point's error term


@dataclass(frozen=True)
class KeptNodes:
    """The nodes of one point in the circuit: features, and whether the error term is."""

    features: list[int]
    error: bool

    def indices(self) -> list[int]:
        return self.features + ([ERROR] if self.error else [])


def _direct_graph(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    clean: list[PointState],
    p: int,
    q: int,
) -> tuple[Tensor, Tensor]:
    """(leaf at p, activation at q) with the points strictly between them frozen."""
    leaf = clean[p].x.clone().requires_grad_(True)
    seen: dict[str, Tensor] = {}

    def start(act: Tensor, hook) -> Tensor:
        return leaf.reshape(act.shape).to(act.dtype)

    def freeze(act: Tensor, hook) -> Tensor:
        return act.detach()

    def end(act: Tensor, hook) -> None:
        seen["x"] = flat(act).float()

    hooks = [(points[p].hook_name, start)]
    hooks += [(points[s].hook_name, freeze) for s in range(p + 1, q)]
    hooks += [(points[q].hook_name, end)]
    model.run_with_hooks(tokens, fwd_hooks=hooks, stop_at_layer=points[q].layer + 1)
    return leaf, seen["x"]


def edge_effects(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    clean: list[PointState],
    ablated: list[PointState],
    grads: list[Float[Tensor, "batch pos d_in"]],
    kept: list[KeptNodes],
) -> dict[tuple[int, int], Float[Tensor, "up down"]]:
    """Edge effects summed over positions and examples, per (upstream, downstream) point pair:
    rows follow `kept[p].indices()`, columns `kept[q].indices()`."""
    out = {}
    with torch.enable_grad():
        for q, down in enumerate(kept):
            if not down.indices():
                continue
            weights = grads[q] @ points[q].decoder.T  # dm/dd for every feature d
            for p in upstream_points(points, q):
                ups = kept[p].indices()
                if not ups:
                    continue
                leaf, xq = _direct_graph(model, tokens, points, clean, p, q)
                fq = points[q].encode(xq).float()
                df_up = ablated[p].f - clean[p].f
                derr_up = ablated[p].err - clean[p].err
                rows = kept[p].features
                table = torch.zeros(len(ups), len(down.indices()))
                for column, d in enumerate(down.indices()):
                    if d == ERROR:
                        value = (grads[q] * (xq - points[q].decode(fq))).sum()
                    else:
                        value = (weights[..., d] * fq[..., d]).sum()
                    (g,) = torch.autograd.grad(value, leaf, retain_graph=True)
                    g = g.reshape(clean[p].x.shape)
                    if rows:  # only the kept upstream features' decoder directions
                        along = g @ points[p].decoder[rows].T
                        table[: len(rows), column] = (along * df_up[..., rows]).sum((0, 1))
                    if kept[p].error:
                        table[-1, column] = (g * derr_up).sum()
                out[(p, q)] = table.detach()
    return out

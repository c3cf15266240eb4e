"""Edges between kept nodes of neighbouring points, with the residual-stream correction.

The edge u -> d is the effect on the metric of moving u to its ablated value, carried through
d only: `(u_abl - u) * d/du [ (dm/dd) * d ]`, with dm/dd held fixed (Marks et al. 2024). Upstream
of a point q are the last residual point before it and the sublayer points after that one.
Moving u also moves d through the sublayer points between them, and those paths are counted by
the edges u -> s -> d already; so the outputs of the points strictly between u and d are held
at their clean values (stop-gradient), and only the direct path remains.

One forward gives every such graph at once (`cut_forward`): each point is replaced by a leaf
holding its clean value, so what reaches q is a function of the leaves of q's upstream points
along the direct paths only. Each downstream node is a direction at q (`node_directions`);
one batched backward per point q (`edge_gradients`, vmapped over its nodes) gives each node's
gradient at every upstream leaf.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.feature_circuits.attribution import PointState, enters_a_block, flat, start_block
from circuitforge.feature_circuits.points import SAEPoint, upstream_points
from circuitforge.model.forward import embed, run_blocks
from circuitforge.model.hooks import FwdHooks

ERROR = -1  # the node index of a point's error term
EVERY = None  # the position of a summed node: all of them
Node = tuple[int | None, int]  # (position or EVERY, feature or ERROR)


@dataclass(frozen=True)
class KeptNodes:
    """The nodes of one point in the circuit: features, and whether the error term is."""

    features: list[int]
    error: bool

    def indices(self) -> list[int]:
        return self.features + ([ERROR] if self.error else [])


def cut_forward(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    clean: list[PointState],
) -> tuple[list[Tensor], list[Tensor]]:
    """(leaves, reached): a leaf per point holding its clean activation, which the model runs on
    in its place, and the activation each point receives, as a function of the earlier leaves.
    The gradient of reached[q] at leaves[p] is the direct-path one: the points between are
    leaves too, so nothing flows through them."""
    leaves = [s.x.detach().clone().requires_grad_(True) for s in clean]
    reached: list[Tensor] = [s.x for s in clean]

    def hook_for(i: int):
        def hook(act: Tensor, hook) -> Tensor:
            reached[i] = flat(act).float()
            return leaves[i].reshape(act.shape).to(act.dtype)

        return hook

    hooks: FwdHooks = [(p.hook_name, hook_for(i)) for i, p in enumerate(points)]
    stop = max(p.layer for p in points) + 1
    residual, mask = embed(model, tokens)
    start, dtype = 0, residual.dtype
    if enters_a_block(points[0]):  # start at the first point, on its leaf
        start, residual, hooks = (
            start_block(points[0]),
            leaves[0].reshape(residual.shape),
            hooks[1:],
        )
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        run_blocks(model, residual.to(dtype), start, stop, mask)
    return leaves, reached


def feature_directions(
    point: SAEPoint, x: Float[Tensor, "rows d_in"], f: Float[Tensor, "rows d_sae"], features: list
) -> Float[Tensor, "n d_in"]:
    """d f_i / dx where feature i is active, for each of `features` (0 if never active).

    ReLU, JumpReLU and TopK encoders after an affine input map are `f_i = [active] (x . e_i +
    c_i)`: the gradient is one vector per feature, read by autograd at one row where it is
    active (n rows through the encoder, not every row), and checked on every row."""
    active = f[:, features] != 0
    has = active.any(0)
    probe_rows = active.float().argmax(0)  # a row where each feature is active
    probe = x[probe_rows].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        picked = point.encode(probe).float()[torch.arange(len(features)), features]
        (e,) = torch.autograd.grad(picked.sum(), probe)
    e = e * has[:, None]
    c = picked.detach() - (probe.detach() * e).sum(-1)
    rebuilt = active * (x @ e.T + c)
    want = f[:, features]
    if not torch.allclose(rebuilt, want, rtol=1e-3, atol=1e-4 * (1 + float(want.abs().max()))):
        raise ValueError(
            f"the SAE at {point.hook_name} is not [active] * affine(x) per feature (ReLU, "
            "JumpReLU, TopK after an affine input map); edges need that form"
        )
    return e


def error_gradient(
    point: SAEPoint, x: Float[Tensor, "batch pos d_in"], grad: Float[Tensor, "batch pos d_in"]
) -> Float[Tensor, "batch pos d_in"]:
    """d/dx of (dm/dx) . err(x), err(x) = x - decode(encode(x)): the error node's direction."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        value = (grad * (x - point.decode(point.encode(x).float()))).sum()
        (g,) = torch.autograd.grad(value, x)
    return g


def node_directions(
    point: SAEPoint,
    x: Float[Tensor, "batch pos d_in"],
    f: Float[Tensor, "batch pos d_sae"],
    grad: Float[Tensor, "batch pos d_in"],
    nodes: Sequence[Node],
) -> Float[Tensor, "n batch pos d_in"]:
    """Per downstream node d, the gradient at its point of the node's value (dm/dd) * d: a
    feature's is (dm/dd) [active] e_d, the error's `error_gradient`; a node at one position is
    zero at the others."""
    features = sorted({d for _, d in nodes if d != ERROR})
    column = {d: k for k, d in enumerate(features)}
    rows = x.reshape(-1, x.shape[-1])
    if features:
        e = feature_directions(point, rows, f.reshape(-1, f.shape[-1]), features)
        weight = (grad @ point.decoder[features].T) * (f[..., features] != 0)  # [b pos n]
    if any(d == ERROR for _, d in nodes):
        err = error_gradient(point, x, grad)
    out = []
    for position, d in nodes:
        v = err if d == ERROR else weight[..., column[d], None] * e[column[d]]
        if position is not EVERY:
            at = torch.tensor([position], device=v.device)
            v = torch.zeros_like(v).index_copy_(1, at, v[:, [position]])
        out.append(v)
    return torch.stack(out)


def edge_gradients(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    clean: list[PointState],
    grads: list[Float[Tensor, "batch pos d_in"]],
    down: Sequence[Sequence[Node]],
    chunk: int = 32,
) -> Iterator[tuple[int, int, Float[Tensor, "n batch pos d_in"]]]:
    """(p, q, G): G[k] is the gradient at point p's leaf of q's node down[q][k] (direct paths),
    for every point q with nodes and every p upstream of it; `chunk` nodes per backward."""
    leaves, reached = cut_forward(model, tokens, points, clean)
    for q, nodes in enumerate(down):
        ups = upstream_points(points, q)
        if not nodes or not ups:
            continue
        directions = node_directions(points[q], clean[q].x, clean[q].f, grads[q], nodes)
        parts: list[list[Tensor]] = [[] for _ in ups]
        for v in directions.split(chunk):
            found = torch.autograd.grad(
                reached[q],
                [leaves[p] for p in ups],
                grad_outputs=v.to(reached[q].dtype),
                is_grads_batched=True,
                retain_graph=True,
                allow_unused=True,
            )
            for k, (p, g) in enumerate(zip(ups, found)):
                shape = (len(v), *clean[p].x.shape)
                missing = g is None  # p does not reach q (allow_unused)
                parts[k].append(
                    torch.zeros(shape, device=v.device) if missing else g.reshape(shape).float()
                )
        for p, g in zip(ups, parts):
            yield p, q, torch.cat(g)


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
    down = [[(EVERY, d) for d in k.indices()] for k in kept]
    out = {}
    for p, q, g in edge_gradients(model, tokens, points, clean, grads, down):
        if not kept[p].indices():
            continue
        rows = kept[p].features
        table = torch.zeros(len(kept[p].indices()), len(down[q]))
        if rows:  # along the kept upstream features' decoder directions, times their moves
            df = ablated[p].f[..., rows] - clean[p].f[..., rows]
            along = torch.einsum("nbpd,ud,bpu->un", g, points[p].decoder[rows], df)
            table[: len(rows)] = along.cpu()
        if kept[p].error:
            table[-1] = torch.einsum("nbpd,bpd->n", g, ablated[p].err - clean[p].err).cpu()
        out[(p, q)] = table.detach()
    return out


def embedding_edges(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    point: SAEPoint,
    clean: PointState,
    grad: Float[Tensor, "batch pos d_in"],
    nodes: Sequence[Node],
    ablated_embedding: Float[Tensor, "batch pos d_model"],
) -> Float[Tensor, "pos down"]:
    """Edges from each position's token embedding (`blocks.0.hook_resid_pre`) to the nodes of
    the first point, summed over examples: the direct-path effect of moving the embedding to
    its ablated value, as between two points (`point` must come after the embedding)."""
    residual, mask = embed(model, tokens)
    leaf = residual.detach().clone().float().requires_grad_(True)
    seen: dict[str, Tensor] = {}

    def record(act: Tensor, hook) -> Tensor:
        seen["x"] = flat(act).float()
        return act

    with torch.enable_grad(), model.hooks(fwd_hooks=[(point.hook_name, record)]):
        run_blocks(model, leaf.to(residual.dtype), 0, point.layer + 1, mask)
    directions = node_directions(point, clean.x, clean.f, grad, nodes)
    delta = (ablated_embedding.float() - leaf.detach()).to(leaf.device)
    tables = []
    for v in directions.split(32):
        (g,) = torch.autograd.grad(
            seen["x"], leaf, grad_outputs=v, is_grads_batched=True, retain_graph=True
        )
        tables.append(torch.einsum("nbpd,bpd->pn", g.float(), delta))
    return torch.cat(tables, dim=1).detach().cpu()

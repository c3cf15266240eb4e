"""The gradient-based peers' common step: per edge, (clean - ablated output of the source) .
d(metric)/d(the destination slot's input), with the gradient taken in any pass.

This is EAP-IG's `make_hooks_and_matrices` over our graph: the source differences are fixed
(clean run minus ablation run, as `PreparedBatch` ablates), and the gradient is taken with
respect to every slot input (each head's Q/K/V input, each MLP's input, the logits' input) as
the masked forward builds it with every coefficient 1 (the model itself), read by hooks that run
after the masked forward's own (`after`). `overrides` are forward hooks
registered before the masked forward's, so they change what a pass computes: an interpolated
input (EAP-IG-inputs), an interpolated source (EAP-IG-activations). In the plain clean pass this
is exactly EAP, d(metric)/d(coefficient) at all coefficients 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from circuitforge.edges.graph import EdgeGraph
from circuitforge.edges.masked_forward import MaskedForward, RunRecord, dense_coefficients
from circuitforge.edges.peers.metric import Metric
from circuitforge.edges.prepared import PreparedBatch
from circuitforge.model import hooks
from circuitforge.model.hooks import FwdHooks


@dataclass(frozen=True)
class CleanRun:
    """The clean run's record and, per source group, clean minus ablated output [b, p, g, d]
    (EAP-IG's activation difference with the opposite sign: ours is positive toward clean)."""

    record: RunRecord
    differences: list[Tensor]

    @property
    def stacked(self) -> Float[Tensor, "batch pos source d_model"]:
        return torch.cat(self.differences, dim=2)


@torch.no_grad()
def clean_run(forward: MaskedForward, prepared: PreparedBatch) -> CleanRun:
    record, _ = forward.record(prepared.batch.clean)
    differences = [c - a for c, a in zip(record.sources, prepared.ablated.sources)]
    return CleanRun(record, differences)


def slot_hook_names(forward: MaskedForward) -> list[str]:
    """The hook points of the slots, in the order of `graph.slots` (Q, K, V of every head of a
    layer, then its MLP; the logits last)."""
    names = []
    for layer in range(forward.n_layers):
        names += [hooks.q_input(layer), hooks.k_input(layer), hooks.v_input(layer)]
        if forward.has_mlp:
            names.append(hooks.mlp_in(layer))
    names.append(hooks.resid_post(forward.n_layers - 1))
    return names


def slot_gradient_grid(
    forward: MaskedForward,
    prepared: PreparedBatch,
    metric: Metric,
    differences: Float[Tensor, "batch pos source d_model"],
    overrides: FwdHooks | None = None,
) -> Float[Tensor, "position source slot"]:
    """One forward and backward: sum over the batch (and, unless the graph is per position,
    over positions) of differences[s] . d(metric)/d(input of slot t), for every cell (s, t)."""
    graph = forward.graph
    inputs: dict[str, Tensor] = {}

    def keep(x: Tensor, hook) -> None:
        inputs[hook.name] = x

    names = slot_hook_names(forward)
    ones = dense_coefficients(graph, torch.ones(len(graph.edges)))
    with torch.enable_grad(), forward.model.hooks(fwd_hooks=overrides or []):
        after: FwdHooks = [(name, keep) for name in names]
        logits = forward(prepared.batch.clean, prepared.ablated, ones.requires_grad_(), after)
        slots = [inputs[name] for name in names]
        grads = torch.autograd.grad(metric(logits).sum(), slots, allow_unused=True)
    per_slot = []
    for slot, grad in zip(slots, grads):
        grad = torch.zeros_like(slot) if grad is None else grad.detach()
        per_slot.append(grad if grad.dim() == 4 else grad.unsqueeze(2))
    slot_grads = torch.cat(per_slot, dim=2).to(differences.dtype)
    if graph.n_positions is None:
        return torch.einsum("bpsd,bptd->st", differences, slot_grads).unsqueeze(0)
    return torch.einsum("bpsd,bptd->pst", differences, slot_grads)


def edge_scores(
    graph: EdgeGraph, grid: Float[Tensor, "position source slot"]
) -> Float[Tensor, " edge"]:
    """Per edge, the sum of its cells (an edge into all of a head's Q/K/V owns three)."""
    edge, position, source, slot = graph.cells
    values = grid[position, source, slot]
    return torch.zeros(len(graph.edges), dtype=grid.dtype).index_add_(0, edge, values)


def path_gradient_grid(
    forward: MaskedForward,
    prepared: PreparedBatch,
    metric: Metric,
    differences: Float[Tensor, "batch pos source d_model"],
    hook_name: str,
    clean: Tensor,
    ablated: Tensor,
    alphas: list[float],
) -> Float[Tensor, "position source slot"]:
    """The sum of `slot_gradient_grid` over points on the straight path from `ablated` to
    `clean` at `hook_name` (the value there is replaced by ablated + alpha (clean - ablated)):
    the integrated-gradients sum of the EAP-IG family, unnormalised."""
    grid = torch.zeros(())
    for alpha in alphas:
        point = ablated + alpha * (clean - ablated)

        def interpolate(x: Tensor, hook, point=point) -> Tensor:
            return point.to(x.dtype)

        override: FwdHooks = [(hook_name, interpolate)]
        grid = grid + slot_gradient_grid(forward, prepared, metric, differences, override)
    return grid

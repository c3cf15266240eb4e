"""Exact edge patching (MIB's `exact`; EAP-IG's `get_scores_exact`): per edge, the metric of
the full model minus the metric with that one edge ablated (every other coefficient 1).

One forward per edge, many edges per forward: the batch is stacked `edges_per_pass` times along
its batch axis, one edge removed in each copy. With every other coefficient 1 the masked forward
is the model itself except at the removed edge's destination slot, whose input loses
(clean - ablated output of the source): the sources before a slot are untouched by what the
slot reads, so that difference is the clean run's. So each pass is the plain model with that
difference subtracted at the slot's hook (the Q/K/V input of one head, an MLP's input, the
logits' input) in each copy: a plain forward, not the masked forward's sum over every cell;
equal to one masked forward per edge with that coefficient 0 (`tests/test_edge_peers.py`, by
brute force). Signed as the gradient peers: positive where removing the edge lowers the metric
(EAP-IG: intervened loss minus baseline loss, the loss being minus the metric).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.peers.metric import answer_logits_only, check_objective
from circuitforge.edges.peers.result import PeerScores
from circuitforge.edges.peers.slot_gradients import clean_run, slot_hook_names
from circuitforge.edges.prepared import PreparedBatch
from circuitforge.model.hooks import FwdHooks
from circuitforge.model.internals import edge_hook_points


def check_edges_per_pass(edges_per_pass: int) -> int:
    if edges_per_pass < 1:
        raise ValueError(f"edges_per_pass must be >= 1, got {edges_per_pass}")
    return edges_per_pass


def slot_places(forward: MaskedForward) -> list[tuple[str, int]]:
    """Per slot of the graph (in its order), its hook name and its index there (the head; 0 for
    an MLP's or the logits' input)."""
    places = []
    names = iter(slot_hook_names(forward))
    for _ in range(forward.n_layers):
        for _ in range(3):  # q, k, v: one hook per channel, one index per head
            name = next(names)
            places += [(name, head) for head in range(forward.n_heads)]
        if forward.has_mlp:
            places.append((next(names), 0))
    places.append((next(names), 0))
    return places


@torch.no_grad()
def exact_effects(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    objective: str,
    edges: Sequence[int],
    edges_per_pass: int = 32,
) -> Float[Tensor, " chosen"]:
    """Per chosen edge (indices into `forward.graph.edges`), metric(full) - metric(without it),
    averaged over the pairs."""
    metric_kind = check_objective(objective)
    check_edges_per_pass(edges_per_pass)
    graph, model = forward.graph, forward.model
    owner, position, source, slot = graph.cells
    cells_of = [torch.nonzero(owner == i).flatten().tolist() for i in range(len(graph.edges))]
    places = slot_places(forward)
    total = torch.zeros(len(edges), dtype=torch.float64)
    n_pairs = 0
    for p in prepared:
        b, n_pos = p.batch.clean.shape
        differences = clean_run(forward, p).stacked
        with edge_hook_points(model), answer_logits_only(model, p, metric_kind) as metric:
            full = metric(model(p.batch.clean)).double()
        for first in range(0, len(edges), edges_per_pass):
            chunk = list(edges[first : first + edges_per_pass])
            k = len(chunk)
            cuts: dict[str, Tensor] = {}
            for j, edge in enumerate(chunk):
                rows = slice(j * b, (j + 1) * b)
                for cell in cells_of[edge]:
                    name, index = places[int(slot[cell])]
                    width = (
                        model.cfg.n_heads if name.endswith(("q_input", "k_input", "v_input")) else 1
                    )
                    cut = cuts.setdefault(
                        name, differences.new_zeros(k * b, n_pos, width, differences.shape[-1])
                    )
                    if graph.n_positions is None:
                        cut[rows, :, index] += differences[:, :, int(source[cell])]
                    else:
                        at = int(position[cell])
                        cut[rows, at, index] += differences[:, at, int(source[cell])]

            def remove(x: Tensor, hook, cuts: dict[str, Tensor] = cuts) -> Tensor:
                cut = cuts[hook.name]
                return x - (cut if x.dim() == 4 else cut[:, :, 0])

            tokens = p.batch.clean.repeat(k, 1)
            cut_hooks: FwdHooks = [(name, remove) for name in cuts]
            with (
                edge_hook_points(model),
                answer_logits_only(model, p, metric_kind, copies=k) as metric,
            ):
                logits = model.run_with_hooks(tokens, fwd_hooks=cut_hooks)
                without = metric(logits).double()
            total[first : first + k] += full - without
        n_pairs += b
    return (total / max(1, n_pairs)).float()


def exact_scores(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    objective: str = "logit_diff",
    edges_per_pass: int = 32,
) -> PeerScores:
    """Exact patching scores of every edge of `forward.graph` on `prepared`."""
    start = time.perf_counter()
    n = len(forward.graph.edges)
    scores = exact_effects(forward, prepared, objective, range(n), edges_per_pass)
    forwards = float(len(prepared) * (1 + n))  # the full model, then one pass per edge
    return PeerScores("exact", scores, forwards, 0.0, time.perf_counter() - start)

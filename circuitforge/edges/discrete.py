"""Discrete circuits: which edges to keep, and which of those can matter at all."""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuitforge.edges.graph import ComponentNode, EdgeGraph


def top_edges(scores: Float[Tensor, " edge"], n_keep: int) -> Bool[Tensor, " edge"]:
    """The `n_keep` highest-scoring edges (ties broken by edge order: deterministic)."""
    n_keep = max(0, min(int(n_keep), scores.numel()))
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    if n_keep:
        order = torch.sort(scores.detach().cpu().float(), descending=True, stable=True).indices
        keep[order[:n_keep]] = True
    return keep


def prune_dead_ends(graph: EdgeGraph, keep: Bool[Tensor, " edge"]) -> Bool[Tensor, " edge"]:
    """Drop kept edges whose destination has no kept path to the logits (they change nothing).

    A node is live when it is the logits or has a kept edge into a live node; walked from the
    last layer down, since edges only go forward.
    """
    keep = keep.clone()
    live: set[ComponentNode] = {ComponentNode("logits")}

    def dest_order(i: int) -> tuple[int, int]:  # logits, then per layer the MLP, then heads
        dest = graph.edges[i].dest
        return (10**9 if dest.kind == "logits" else dest.layer, int(dest.kind == "mlp"))

    order = sorted(range(len(graph.edges)), key=dest_order, reverse=True)
    for i in order:
        edge = graph.edges[i]
        if not keep[i]:
            continue
        if edge.dest in live:
            live.add(edge.src)
        else:
            keep[i] = False
    return keep


def node_names(graph: EdgeGraph, keep: Bool[Tensor, " edge"]) -> list[str]:
    nodes = {e.src for e, k in zip(graph.edges, keep.tolist()) if k}
    nodes |= {e.dest for e, k in zip(graph.edges, keep.tolist()) if k}
    return [n.name for n in sorted(nodes, key=_node_order)]


def _node_order(node: ComponentNode) -> tuple[int, int, int]:
    rank = {"input": 0, "head": 1, "mlp": 2, "logits": 3}[node.kind]
    layer = -1 if node.kind == "input" else (10**9 if node.kind == "logits" else node.layer)
    return (layer, rank, node.head)

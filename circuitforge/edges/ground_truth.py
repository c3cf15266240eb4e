"""Ground truth per ablation: the edges whose removal alone changes the model's output.

For tracr programs the weights say which edges exist at all (a source writes a subspace the
destination reads; `circuit.json`'s `edges_on_path`, computed from the weights without this
code). Which of them a clean/corrupt interchange can find depends on the ablation: an edge
that only carries BOS, position or constant directions carries the same value in both runs.
So the truth for an ablation is: the edges whose single removal (coefficient 0, all others 1)
changes some read output on the given pairs by more than `tolerance`.
"""

from __future__ import annotations

import torch

from circuitforge.edges.evaluation import PreparedBatch
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients


@torch.no_grad()
def single_edge_effects(forward: MaskedForward, prepared: list[PreparedBatch]) -> torch.Tensor:
    """[edge]: the largest change of a read logit when that edge alone is removed."""
    graph = forward.graph
    n = len(graph.edges)
    full = [
        forward(p.batch["clean"], p.ablated, dense_coefficients(graph, torch.ones(n)))
        for p in prepared
    ]
    effects = torch.zeros(n)
    for i in range(n):
        coefficients = torch.ones(n)
        coefficients[i] = 0
        grid = dense_coefficients(graph, coefficients)
        for p, reference in zip(prepared, full):
            logits = forward(p.batch["clean"], p.ablated, grid)
            change = (logits - reference)[p.batch["read"]].abs().max().item()
            effects[i] = max(effects[i].item(), change)
    return effects


def ablation_truth(
    forward: MaskedForward, prepared: list[PreparedBatch], tolerance: float = 1e-3
) -> list[dict]:
    effects = single_edge_effects(forward, prepared)
    return [
        {"src": e.src.name, "dest": e.dest.name, "channel": e.channel}
        for e, effect in zip(forward.graph.edges, effects.tolist())
        if effect > tolerance
    ]

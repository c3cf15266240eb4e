"""Ground truth per ablation: the edges whose removal alone changes the model's output.

For tracr programs the weights say which edges exist at all (a source writes a subspace the
destination reads; `circuit.json`'s `edges_on_path`, computed from the weights without this
code). Which of them a clean/corrupt interchange can find depends on the ablation: an edge
that only carries BOS, position or constant directions carries the same value in both runs.
So the truth for an ablation is: the edges whose single removal (coefficient 0, all others 1)
changes some read output on the given pairs by more than `tolerance`.

A found circuit is matched against a truth read from a `circuit.json` (`load_true_edges`,
`ground_truth_match`): exact or not, what is missing and extra, and how well the scores rank
the true edges (ROC AUC).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc

from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.prepared import PreparedBatch


@torch.no_grad()
def single_edge_effects(forward: MaskedForward, prepared: list[PreparedBatch]) -> torch.Tensor:
    """[edge]: the largest change of a read logit when that edge alone is removed."""
    graph = forward.graph
    n = len(graph.edges)
    full = [
        forward(p.batch.clean, p.ablated, dense_coefficients(graph, torch.ones(n)))
        for p in prepared
    ]
    effects = torch.zeros(n)
    for i in range(n):
        coefficients = torch.ones(n)
        coefficients[i] = 0
        grid = dense_coefficients(graph, coefficients)
        for p, reference in zip(prepared, full):
            logits = forward(p.batch.clean, p.ablated, grid)
            change = (logits - reference)[p.batch.read].abs().max().item()
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


def load_true_edges(path: str | Path, key: str) -> set[str]:
    """Edge names from a circuit.json (`{key: [{src, dest, channel}, ...]}`)."""
    data = json.loads(Path(path).read_text())
    if key not in data:
        raise KeyError(f"{path} has no {key!r}; it has {sorted(data)}")
    names = set()
    for e in data[key]:
        channel = e.get("channel")
        names.add(f"{e['src']}->{e['dest']}" + (f"[{channel}]" if channel else ""))
    return names


@dataclass(frozen=True)
class GroundTruthMatch:
    """A kept circuit against the true one: `exact` when they are the same edges; `roc_auc` of
    the scores against the truth (None when every edge, or none, is true)."""

    exact: bool
    n_true: int
    missing: list[str]
    extra: list[str]
    roc_auc: float | None

    def to_json(self) -> dict:
        return asdict(self)


def ground_truth_match(
    edge_names: list[str],
    scores: Float[Tensor, " edge"],
    keep: Bool[Tensor, " edge"],
    truth: set[str],
) -> GroundTruthMatch:
    unknown = truth - set(edge_names)
    if unknown:
        raise ValueError(f"true edges not in this graph: {sorted(unknown)[:5]}")
    kept = {n for n, k in zip(edge_names, keep.tolist()) if k}
    labels = torch.tensor([n in truth for n in edge_names])
    auc = (
        binary_auroc(scores.float(), labels.long()).item()
        if 0 < labels.sum() < len(labels)
        else None
    )
    return GroundTruthMatch(
        exact=kept == truth,
        n_true=len(truth),
        missing=sorted(truth - kept),
        extra=sorted(kept - truth),
        roc_auc=auc,
    )

"""The keep rule: which edges the discrete circuit keeps, given the scores.

`KeepRule` states the rule (a count, a distance to the full model, or a coefficient threshold);
`discrete_circuit` applies it. The distance searches run the masked forward on prepared pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuitforge.edges.discrete import prune_dead_ends, top_edges
from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.prepared import PreparedBatch, evaluate_coefficients

KeepMetric = Literal["kl", "mse"]


@dataclass(frozen=True)
class KeepRule:
    """How the discrete circuit is chosen. The first that is set wins.

    Args:
        n_edges: keep this many top-scoring edges.
        max_distance: else keep the fewest top-scoring edges whose circuit is within this
            distance of the full model (by `metric`, on the prepared pairs).
        threshold: else keep every edge whose coefficient is >= this.
        metric: `kl` (nats at the read positions) or `mse` (of the read outputs).
        prune: after the `max_distance` search, remove kept edges one at a time while the
            circuit stays within it.
    """

    n_edges: int | None = None
    max_distance: float | None = None
    threshold: float = 0.5
    metric: KeepMetric = "kl"
    prune: bool = False

    def __post_init__(self) -> None:
        if self.metric not in ("kl", "mse"):
            raise ValueError(f"keep metric must be kl or mse, got {self.metric!r}")
        if self.n_edges is not None and self.n_edges < 0:
            raise ValueError(f"keep_edges must be >= 0, got {self.n_edges}")
        if self.max_distance is not None and self.max_distance < 0:
            raise ValueError(f"keep_kl must be >= 0, got {self.max_distance}")
        if self.prune and self.max_distance is None:
            raise ValueError("prune_kept needs keep_kl: the distance the pruned circuit keeps")


def smallest_faithful_circuit(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    scores: Tensor,
    max_distance: float,
    metric: str = "kl",
) -> Tensor:
    """The fewest top-scoring edges whose circuit is within `max_distance` of the full model by
    `metric` (kl or mse; binary search on the count, assuming more edges never hurt; the full
    graph always qualifies)."""
    low, high = 0, scores.numel()
    while low < high:
        middle = (low + high) // 2
        keep = prune_dead_ends(forward.graph, top_edges(scores, middle))
        if evaluate_coefficients(forward, prepared, keep.float())[metric] <= max_distance:
            high = middle
        else:
            low = middle + 1
    return top_edges(scores, low)


def prune_one_at_a_time(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    scores: Tensor,
    keep: Bool[Tensor, " edge"],
    max_distance: float,
    metric: str = "kl",
) -> Bool[Tensor, " edge"]:
    """Remove kept edges while the circuit stays within `max_distance`, lowest scores first,
    until no single edge can go: the result is locally minimal (every edge left is needed).

    Groups first: the lowest-scoring half of the candidates is tried at once, and a group that
    cannot go is split in two, down to single edges (so t needed edges among n cost about
    t log(n / t) evaluations, not n per pass). Passes repeat until nothing changes, since an
    edge can become removable once another is gone. Where the scores rank a needed edge below
    unneeded ones, the fewest-top-edges search must keep the unneeded ones too; this removes them.
    """
    keep = prune_dead_ends(forward.graph, keep.clone())
    ascending = torch.sort(scores.detach().cpu().float(), stable=True).indices.tolist()

    def faithful(trial: Tensor) -> bool:
        return evaluate_coefficients(forward, prepared, trial.float())[metric] <= max_distance

    changed = True
    while changed:
        changed = False
        candidates = [i for i in ascending if keep[i]]
        half = len(candidates) // 2  # the lower-scoring half is tried first (the whole set
        stack = [candidates[half:], candidates[:half]]  # at once would almost never go)
        while stack:
            group = [i for i in stack.pop() if keep[i]]
            if not group:
                continue
            trial = keep.clone()
            trial[group] = False
            trial = prune_dead_ends(forward.graph, trial)
            if faithful(trial):
                keep, changed = trial, True
            elif len(group) > 1:
                half = len(group) // 2
                stack += [group[half:], group[:half]]  # the lower-scoring half is tried first
    return keep


def discrete_circuit(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    scores: Float[Tensor, " edge"],
    coefficients: Float[Tensor, " edge"],
    rule: KeepRule,
) -> Bool[Tensor, " edge"]:
    """Keep `rule.n_edges` top edges, else the fewest within `rule.max_distance` of the full
    model by `rule.metric` (then, with `rule.prune`, removed one at a time while within it),
    else those whose coefficient is >= `rule.threshold`; then drop dead ends."""
    if rule.n_edges is not None:
        keep = top_edges(scores, rule.n_edges)
    elif rule.max_distance is not None:
        keep = smallest_faithful_circuit(forward, prepared, scores, rule.max_distance, rule.metric)
        if rule.prune:
            keep = prune_one_at_a_time(
                forward, prepared, scores, keep, rule.max_distance, rule.metric
            )
    else:
        keep = coefficients.detach().cpu() >= rule.threshold
    return prune_dead_ends(forward.graph, keep)

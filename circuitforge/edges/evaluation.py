"""Evaluate coefficient vectors (discrete circuits, sweeps) and score edges by attribution.

A `Batch` is a dict of `clean`, `corrupt`, `read`, `answer`, `wrong_answer` tensors (see
`circuitforge.tasks.prompt_pairs`). Everything here runs the one-pass masked forward.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from circuitforge.edges.discrete import prune_dead_ends, top_edges
from circuitforge.edges.masked_forward import Ablation, MaskedForward, dense_coefficients
from circuitforge.edges.objectives import (
    faithfulness,
    kl_to_full,
    logit_difference,
    read_log_probs,
    squared_error_to_full,
)

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class PreparedBatch:
    """A batch with its ablation run and the full model's outputs, computed once."""

    def __init__(self, forward: MaskedForward, batch: dict, ablation: Ablation) -> None:
        self.batch = batch
        clean_run, clean_logits = forward.record(batch["clean"])
        corrupt_run, _ = (
            forward.record(batch["corrupt"]) if ablation == "interchange" else (None, None)
        )
        self.ablated = forward.ablation(ablation, clean_run, corrupt_run)
        self.full_log_probs = read_log_probs(clean_logits, batch["read"])
        self.full_outputs = clean_logits[batch["read"]].float()
        self.has_answer = bool((batch["answer"] >= 0).all())
        with torch.no_grad():
            empty = forward(batch["clean"], self.ablated, self._grid(forward, 0.0))
        self.empty_kl = kl_to_full(self.full_log_probs, empty, batch["read"])
        self.empty_mse = squared_error_to_full(self.full_outputs, empty, batch["read"])
        if self.has_answer:
            self.full_ld = self.logit_diff(clean_logits)
            self.empty_ld = self.logit_diff(empty)

    @staticmethod
    def _grid(forward: MaskedForward, value: float) -> Tensor:
        n = len(forward.graph.edges)
        return dense_coefficients(forward.graph, torch.full((n,), value))

    def logit_diff(self, logits: Tensor) -> Tensor:
        b = self.batch
        return logit_difference(logits, b["read"], b["answer"], b["wrong_answer"])


@torch.no_grad()
def evaluate_coefficients(
    forward: MaskedForward, prepared: list[PreparedBatch], coefficients: Float[Tensor, " edge"]
) -> dict[str, float]:
    """KL and mean squared output error to the full model, and (with answers) logit difference
    and its recovered fraction."""
    grid = dense_coefficients(forward.graph, coefficients.float())
    kl, mse, ld, full, empty = [], [], [], [], []
    for p in prepared:
        logits = forward(p.batch["clean"], p.ablated, grid)
        kl.append(kl_to_full(p.full_log_probs, logits, p.batch["read"]))
        mse.append(squared_error_to_full(p.full_outputs, logits, p.batch["read"]))
        if p.has_answer:
            ld.append(p.logit_diff(logits))
            full.append(p.full_ld)
            empty.append(p.empty_ld)
    out = {"kl": torch.cat(kl).mean().item(), "mse": torch.cat(mse).mean().item()}
    if ld:
        m_c, m_f, m_e = (torch.cat(x).mean() for x in (ld, full, empty))
        out |= {
            "logit_diff": m_c.item(),
            "logit_diff_full": m_f.item(),
            "logit_diff_empty": m_e.item(),
            "logit_diff_recovered": faithfulness(m_c, m_f, m_e).item(),
        }
    return out


def empty_distance(prepared: list[PreparedBatch], metric: str) -> float:
    """The keep metric (kl or mse) of the empty circuit: what the full model is told apart by."""
    values = [p.empty_kl if metric == "kl" else p.empty_mse for p in prepared]
    return torch.cat(values).mean().item()


def faithfulness_sweep(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    scores: Float[Tensor, " edge"],
    fractions: tuple[float, ...] = MIB_FRACTIONS,
    metric: str = "kl",
) -> dict:
    """MIB's curve: keep the top fraction of edges by score, faithfulness of each circuit.

    CPR = area under faithfulness(fraction) (trapezoid, higher is better), CMD = area under
    |1 - faithfulness| (lower is better), both over fractions 0.001..1 on a linear axis.
    Faithfulness is the recovered logit difference, or without answers 1 - d/d(empty) with d
    the `metric` (KL, or MSE for numerical outputs).
    """
    points = []
    for fraction in fractions:
        keep = top_edges(scores, round(fraction * scores.numel()))
        metrics = evaluate_coefficients(forward, prepared, keep.float())
        if "logit_diff_recovered" in metrics:
            f = metrics["logit_diff_recovered"]
        else:
            empty = empty_distance(prepared, metric)
            f = 1 - metrics[metric] / empty if empty > 0 else None  # undefined: see failures
        points.append(
            {"fraction": fraction, "n_edges": int(keep.sum()), "faithfulness": f, **metrics}
        )
    if any(p["faithfulness"] is None for p in points):
        return {"points": points, "cpr": None, "cmd": None}
    return {
        "points": points,
        **area_metrics([p["fraction"] for p in points], [p["faithfulness"] for p in points]),
    }


def circuit_failures(n_kept: int, n_edges: int, empty: float, metric: str) -> list[str]:
    """Why a discrete circuit means nothing, in words (empty when it is fine)."""
    failures = []
    if empty <= 1e-9:
        failures.append(
            f"the {metric} cannot tell the full model from the empty circuit ({metric} of the "
            f"empty circuit = {empty:.3g}): under this ablation no edge changes the output, or "
            "the metric is constant (a KL on one output); no circuit can be chosen by it"
        )
    if n_kept == 0:
        failures.append("the kept circuit is empty")
    elif n_kept == n_edges:
        failures.append(
            f"the kept circuit is the whole graph ({n_edges} edges): the scores did not separate "
            "the edges the task needs from the rest"
        )
    return failures


def area_metrics(x: list[float], f: list[float]) -> dict[str, float]:
    cpr = sum((x[i + 1] - x[i]) * (f[i] + f[i + 1]) / 2 for i in range(len(x) - 1))
    cmd = sum(
        (x[i + 1] - x[i]) * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2 for i in range(len(x) - 1)
    )
    return {"cpr": cpr, "cmd": cmd}


def edge_attribution_scores(
    forward: MaskedForward, prepared: list[PreparedBatch], objective: str
) -> Float[Tensor, " edge"]:
    """Edge attribution patching (Syed et al.): d(metric)/d(coefficient) at all coefficients 1.

    With the masked forward this is exactly (out_s - ablated_out_s) . d(metric)/d(input_slot),
    the EAP score, for every edge in one backward pass per batch. Returned as |score|.
    """
    n = len(forward.graph.edges)
    total = torch.zeros(n)
    for p in prepared:
        coefficients = torch.ones(n, requires_grad=True)
        logits = forward(
            p.batch["clean"], p.ablated, dense_coefficients(forward.graph, coefficients)
        )
        if objective == "logit_diff":
            metric = p.logit_diff(logits).mean()
        else:  # the KL's gradient vanishes at the full model: use the full model's prediction
            predicted = p.full_log_probs.argmax(-1, keepdim=True)
            metric = read_log_probs(logits, p.batch["read"]).gather(-1, predicted).mean()
        (grad,) = torch.autograd.grad(metric, coefficients)
        total += grad.detach().cpu()
    return (total / max(1, len(prepared))).abs()


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
    scores: Tensor,
    coefficients: Tensor,
    n_keep: int | None,
    max_distance: float | None,
    threshold: float,
    metric: str = "kl",
    prune: bool = False,
) -> Tensor:
    """Keep `n_keep` top edges, else the fewest within `max_distance` of the full model by
    `metric` (then, with `prune`, removed one at a time while within it), else those whose
    coefficient is >= `threshold`; then drop dead ends."""
    if n_keep is not None:
        keep = top_edges(scores, n_keep)
    elif max_distance is not None:
        keep = smallest_faithful_circuit(forward, prepared, scores, max_distance, metric)
        if prune:
            keep = prune_one_at_a_time(forward, prepared, scores, keep, max_distance, metric)
    else:
        keep = coefficients.detach().cpu() >= threshold
    return prune_dead_ends(forward.graph, keep)

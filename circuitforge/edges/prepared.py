"""Prepared prompt pairs and what a coefficient vector does on them.

A `PreparedBatch` holds a batch (a `PairBatch`) with its ablation run and the full model's
outputs, computed once; `evaluate_coefficients` runs the one-pass masked forward with any
coefficients on them.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from circuitforge.ablation import ABLATIONS, Ablation
from circuitforge.batches import PairBatch
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.objectives import (
    faithfulness,
    kl_to_full,
    logit_difference,
    read_log_probs,
    squared_error_to_full,
)


class PreparedBatch:
    """A batch with its ablation run and the full model's outputs, computed once."""

    def __init__(self, forward: MaskedForward, batch: PairBatch, ablation: Ablation) -> None:
        if ablation not in ABLATIONS:  # before any forward
            raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
        self.batch = batch
        clean_run, clean_logits = forward.record(batch.clean)
        corrupt_run, _ = (
            forward.record(batch.corrupt) if ablation == "interchange" else (None, None)
        )
        self.ablated = forward.ablation(ablation, clean_run, corrupt_run)
        self.full_log_probs = read_log_probs(clean_logits, batch.read)
        self.full_outputs = clean_logits[batch.read].float()
        self.has_answer = bool((batch.answer >= 0).all())
        with torch.no_grad():
            empty = forward(batch.clean, self.ablated, self._grid(forward, 0.0))
        self.empty_kl = kl_to_full(self.full_log_probs, empty, batch.read)
        self.empty_mse = squared_error_to_full(self.full_outputs, empty, batch.read)
        if self.has_answer:
            self.full_ld = self.logit_diff(clean_logits)
            self.empty_ld = self.logit_diff(empty)

    @staticmethod
    def _grid(forward: MaskedForward, value: float) -> Tensor:
        n = len(forward.graph.edges)
        return dense_coefficients(forward.graph, torch.full((n,), value))

    def logit_diff(self, logits: Tensor) -> Tensor:
        b = self.batch
        return logit_difference(logits, b.read, b.answer, b.wrong_answer)


@torch.no_grad()
def evaluate_coefficients(
    forward: MaskedForward, prepared: list[PreparedBatch], coefficients: Float[Tensor, " edge"]
) -> dict[str, float]:
    """KL and mean squared output error to the full model, and (with answers) logit difference
    and its recovered fraction."""
    grid = dense_coefficients(forward.graph, coefficients.float())
    kl, mse, ld, full, empty = [], [], [], [], []
    for p in prepared:
        logits = forward(p.batch.clean, p.ablated, grid)
        kl.append(kl_to_full(p.full_log_probs, logits, p.batch.read))
        mse.append(squared_error_to_full(p.full_outputs, logits, p.batch.read))
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

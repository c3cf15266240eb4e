"""Task metrics on logits, per example: logit difference, KL and squared error to the full model."""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


def last_read_position(read: Bool[Tensor, "batch pos"]) -> Int[Tensor, " batch"]:
    positions = torch.arange(read.shape[1], device=read.device).expand_as(read)
    return torch.where(read, positions, -1).max(dim=1).values


def logit_difference(
    logits: Float[Tensor, "batch pos vocab"],
    read: Bool[Tensor, "batch pos"],
    answer: Int[Tensor, " batch"],
    wrong_answer: Int[Tensor, " batch"],
) -> Float[Tensor, " batch"]:
    """logit(answer) - logit(wrong answer) at the last read position."""
    if (answer < 0).any():
        raise ValueError("this task has no answer tokens: use the kl objective")
    rows = torch.arange(logits.shape[0], device=logits.device)
    last = logits[rows, last_read_position(read)]
    return last[rows, answer] - last[rows, wrong_answer]


def read_log_probs(
    logits: Float[Tensor, "batch pos vocab"], read: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "n_read vocab"]:
    return torch.log_softmax(logits[read].float(), dim=-1)


def kl_to_full(
    full_log_probs: Float[Tensor, "n_read vocab"],
    logits: Float[Tensor, "batch pos vocab"],
    read: Bool[Tensor, "batch pos"],
) -> Float[Tensor, " n_read"]:
    """KL(full model || circuit) at every read position."""
    log_q = read_log_probs(logits, read)
    return (full_log_probs.exp() * (full_log_probs - log_q)).sum(-1)


def faithfulness(
    circuit: Float[Tensor, "..."], full: Float[Tensor, "..."], empty: Float[Tensor, "..."]
) -> Float[Tensor, "..."]:
    """(m(C) - m(empty)) / (m(M) - m(empty)), the MIB normalisation (1 = the full model)."""
    return (circuit - empty) / (full - empty)


def squared_error_to_full(
    full_outputs: Float[Tensor, "n_read vocab"],
    logits: Float[Tensor, "batch pos vocab"],
    read: Bool[Tensor, "batch pos"],
) -> Float[Tensor, " n_read"]:
    """Mean squared difference of the read outputs from the full model's (per read position):
    the distance for numerical outputs, where a one-logit softmax makes every KL 0."""
    return (logits[read].float() - full_outputs).pow(2).mean(-1)


def keep_metric_for(d_vocab_out: int, keep_metric: str) -> str:
    """`auto`: MSE for a numerical (one-output) model, else KL."""
    if keep_metric not in ("auto", "kl", "mse"):
        raise ValueError(f"keep_metric must be auto, kl or mse, got {keep_metric!r}")
    if keep_metric == "auto":
        return "mse" if d_vocab_out == 1 else "kl"
    if keep_metric == "kl" and d_vocab_out == 1:
        raise ValueError(
            "keep_metric kl on a model with one output: the KL of a one-logit softmax is 0 for "
            "every circuit; use keep_metric: mse (or auto)"
        )
    return keep_metric

"""Task metrics on logits, per example: logit difference and KL to the full model."""

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

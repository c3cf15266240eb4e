"""The metric every peer attributes: one number per batch that the scores explain.

`objective` `logit_diff`: the sum over the batch of logit(answer) - logit(wrong answer) at the
last read position (MIB's attribution metric is its negative, the loss; MIB's scores are
(corrupted - clean) . d(loss)/d(input), so both signs agree: positive = the edge carries the
logit difference up). `kl` / `mse`: the sum of the log-probabilities of the full model's
prediction at the read positions (the KL's gradient vanishes at the full model).

Peers sum the metric over a batch and divide by the number of pairs at the end, as EAP-IG
does with a summed metric: every pair weighs the same whatever the batch sizes.

`answer_logits_only` computes the logits of the answer and wrong-answer tokens only (the
unembedding restricted to those columns): the logit difference needs nothing else, and on
Gemma-3-270M the 262k-token unembedding costs more than all the blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedTransformer

from circuitforge.edges.objectives import logit_difference, read_log_probs
from circuitforge.edges.prepared import PreparedBatch

Objective = Literal["logit_diff", "kl", "mse"]
OBJECTIVES: tuple[Objective, ...] = ("logit_diff", "kl", "mse")
Metric = Callable[[Float[Tensor, "batch pos vocab"]], Float[Tensor, " copies"]]


def check_objective(objective: str) -> Objective:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    return objective  # type: ignore[return-value]


@contextmanager
def answer_logits_only(
    model: HookedTransformer, prepared: PreparedBatch, objective: Objective, copies: int = 1
) -> Iterator[Metric]:
    """The metric of logits of `copies` stacked copies of the batch (copy-major): per copy, its
    sum over the batch. For `logit_diff` the unembedding is cut to the answer and wrong-answer
    columns while inside (restored after)."""
    batch = prepared.batch
    check_objective(objective)
    read = batch.read.repeat(copies, 1)
    if objective != "logit_diff":
        predicted = prepared.full_log_probs.argmax(-1, keepdim=True).repeat(copies, 1)

        def log_prob(logits: Tensor) -> Tensor:
            values = read_log_probs(logits, read).gather(-1, predicted)
            return values.reshape(copies, -1).sum(1)

        yield log_prob
        return
    if not prepared.has_answer:
        raise ValueError("this task has no answer tokens: use objective kl or mse")
    both = torch.cat([batch.answer, batch.wrong_answer])
    columns, where = torch.unique(both, return_inverse=True)
    answer = where[: len(batch.answer)].repeat(copies)
    wrong = where[len(batch.answer) :].repeat(copies)
    unembed = model.unembed
    saved = unembed.W_U, unembed.b_U
    unembed.W_U = nn.Parameter(saved[0][:, columns].detach(), requires_grad=False)
    unembed.b_U = nn.Parameter(saved[1][columns].detach(), requires_grad=False)
    try:
        yield (
            lambda logits: logit_difference(logits, read, answer, wrong).reshape(copies, -1).sum(1)
        )
    finally:
        unembed.W_U, unembed.b_U = saved

"""Edge attribution patching (Syed et al. 2023; MIB's `EAP`): the first-order effect of each
edge, d(metric)/d(coefficient) at every coefficient 1.

With the masked forward this is exactly (out_s - ablated_out_s) . d(metric)/d(input_slot), the
EAP score, for every edge in one backward pass per batch (EAP-IG's `get_scores_eap`; equal to
it within 1.2e-7 in `tests/test_edge_peers.py`). Signed: positive where the edge carries the
metric up (MIB's sign: EAP-IG attributes the loss -metric to the corrupted minus clean
activations). The metric: the mean logit difference, or for `kl`/`mse` objectives the mean
log-probability of the full model's prediction (the KL's gradient vanishes at the full model).
"""

from __future__ import annotations

import time

import torch
from jaxtyping import Float
from torch import Tensor

from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.objectives import read_log_probs
from circuitforge.edges.peers.metric import answer_logits_only, check_objective
from circuitforge.edges.peers.result import PeerScores
from circuitforge.edges.peers.slot_gradients import clean_run, edge_scores, slot_gradient_grid
from circuitforge.edges.prepared import PreparedBatch


def edge_attribution_scores(
    forward: MaskedForward, prepared: list[PreparedBatch], objective: str
) -> Float[Tensor, " edge"]:
    """EAP's score of every edge: the gradient of the batch-mean metric, averaged over batches."""
    check_objective(objective)
    n = len(forward.graph.edges)
    total = torch.zeros(n)
    for p in prepared:
        coefficients = torch.ones(n, requires_grad=True)
        logits = forward(p.batch.clean, p.ablated, dense_coefficients(forward.graph, coefficients))
        if objective == "logit_diff":
            metric = p.logit_diff(logits).mean()
        else:  # the KL's gradient vanishes at the full model: use the full model's prediction
            predicted = p.full_log_probs.argmax(-1, keepdim=True)
            metric = read_log_probs(logits, p.batch.read).gather(-1, predicted).mean()
        (grad,) = torch.autograd.grad(metric, coefficients)
        total += grad.detach().cpu()
    return total / max(1, len(prepared))


def eap_scores(
    forward: MaskedForward, prepared: list[PreparedBatch], objective: str = "logit_diff"
) -> PeerScores:
    """EAP with its cost, computed as (clean - ablated) . d(metric)/d(slot input) in the clean
    pass (`slot_gradients.py`: the same scores, with the unembedding cut to the answer columns
    for the logit difference: on Gemma-3-270M a fraction of the memory and time)."""
    metric_kind = check_objective(objective)
    start = time.perf_counter()
    graph = forward.graph
    total = torch.zeros(len(graph.edges), dtype=torch.float64)
    n_pairs = 0
    for p in prepared:
        differences = clean_run(forward, p).stacked
        with answer_logits_only(forward.model, p, metric_kind) as metric:
            grid = slot_gradient_grid(forward, p, metric, differences)
        total += edge_scores(graph, grid).double()
        n_pairs += len(p.batch)
    n = float(len(prepared))
    scores = (total / max(1, n_pairs)).float()
    return PeerScores("eap", scores, 2 * n, n, time.perf_counter() - start)

"""EAP-IG-inputs (Hanna et al. 2024; MIB's `EAP-IG-inputs`): EAP with integrated gradients
whose path interpolates the model's input.

As EAP-IG's `get_scores_eap_ig` (hannamw/EAP-IG 7af394a, the commit MIB pins): for k = 0 ..
steps - 1 the input (the embeddings, our `input` source at `blocks.0.hook_resid_pre`) is set
to ablated + (k / steps)(clean - ablated) while the clean tokens run; the gradient of the
metric at every slot input, summed over the steps, divided by `steps`, times the fixed source
difference clean - ablated, summed over positions and d_model, averaged over the pairs. MIB
runs it with 5 steps. EAP-IG interpolates `hook_embed`, which differs from our input only by the
positional embedding, the same in a clean and a corrupted run: under interchange ablation the
passes are the same. MIB defines it for interchange ablation only; with `zero`/`mean` the path
starts at the ablated input (zeros, the batch mean), ordinary integrated gradients.

`eap_ig_scores(forward, prepared, objective="logit_diff", steps=5) -> Tensor[edge]` is the entry
(also the warm start of learned coefficients): one signed float32 score per edge of
`forward.graph`, in its edge order, positive where the edge carries the metric (logit
difference, or the full model's prediction's log-probability) up. `eap_ig_inputs` is the same
as a `PeerScores` with its cost: `steps` forward+backward passes per batch plus one clean
record.
"""

from __future__ import annotations

import time

import torch
from jaxtyping import Float
from torch import Tensor

from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.peers.metric import answer_logits_only, check_objective
from circuitforge.edges.peers.result import PeerScores
from circuitforge.edges.peers.slot_gradients import clean_run, edge_scores, path_gradient_grid
from circuitforge.edges.prepared import PreparedBatch
from circuitforge.model import hooks

MIB_IG_STEPS = 5


def check_steps(steps: int) -> int:
    if steps < 1:
        raise ValueError(f"integrated-gradient steps must be >= 1, got {steps}")
    return steps


def eap_ig_scores(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    objective: str = "logit_diff",
    steps: int = MIB_IG_STEPS,
) -> Float[Tensor, " edge"]:
    """EAP-IG-inputs scores of every edge of `forward.graph` on `prepared` (see the module)."""
    return eap_ig_inputs(forward, prepared, objective, steps).scores


def eap_ig_inputs(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    objective: str = "logit_diff",
    steps: int = MIB_IG_STEPS,
) -> PeerScores:
    """EAP-IG-inputs scores with their cost."""
    metric_kind = check_objective(objective)
    check_steps(steps)
    start = time.perf_counter()
    graph = forward.graph
    total = torch.zeros(len(graph.edges), dtype=torch.float64)
    n_pairs, forwards, backwards = 0, 0.0, 0.0
    for p in prepared:
        run = clean_run(forward, p)
        differences = run.stacked
        clean_input, ablated_input = run.record.sources[0][:, :, 0], p.ablated.sources[0][:, :, 0]
        alphas = [k / steps for k in range(steps)]  # EAP-IG's inputs rule: 0, ..., (steps-1)/steps
        with answer_logits_only(forward.model, p, metric_kind) as metric:
            start_hook = hooks.resid_pre(0)
            grid = path_gradient_grid(
                forward, p, metric, differences, start_hook, clean_input, ablated_input, alphas
            )
        total += edge_scores(graph, grid / steps).double()
        n_pairs += len(p.batch)
        forwards += 1 + steps  # the clean record, then one forward per step
        backwards += steps
    return PeerScores(
        "eap_ig_inputs",
        (total / max(1, n_pairs)).float(),
        forwards,
        backwards,
        time.perf_counter() - start,
    )

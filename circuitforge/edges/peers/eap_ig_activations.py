"""EAP-IG-activations (MIB's `EAP-IG-activations`): integrated gradients along paths that
interpolate one layer's output at a time.

As EAP-IG's `get_scores_ig_activations` (hannamw/EAP-IG 7af394a): for each layer node in turn
(the input, then per layer its attention output and its MLP output) and k = 1 .. steps, that
node's output is set to ablated + (k / steps)(clean - ablated), a constant (nothing before it
receives gradient through it), while the clean tokens run; the gradients of the metric at every
slot input are summed over all nodes and steps, divided by their number, and multiplied by the
fixed source differences clean - ablated (as EAP-IG-inputs, `eap_ig.py`). The attention output is
interpolated through each head's `z` (EAP-IG interpolates `hook_result` = z W_O per head, linear
in z: the same pass; on post-norm models the norm then sees the interpolated sum, as there).
EAP-IG-7af394a starts mean ablations' paths at zero (no corrupted run fills its matrix); ours
start at the ablated value for every ablation (the same for interchange and zero).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from circuitforge.ablation import Ablation, check_ablation
from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.peers.eap_ig import MIB_IG_STEPS, check_steps
from circuitforge.edges.peers.metric import answer_logits_only, check_objective
from circuitforge.edges.peers.result import PeerScores
from circuitforge.edges.peers.slot_gradients import clean_run, edge_scores, path_gradient_grid
from circuitforge.edges.prepared import PreparedBatch
from circuitforge.model import hooks


@torch.no_grad()
def head_mixes(
    forward: MaskedForward, prepared: PreparedBatch, ablation: Ablation
) -> tuple[list[Tensor], list[Tensor]]:
    """Per layer, every head's z [b, p, head, d_head] in the clean run and in the ablation."""
    model, n_layers = forward.model, forward.n_layers
    names = [hooks.attn_z(layer) for layer in range(n_layers)]
    _, clean = model.run_with_cache(prepared.batch.clean, names_filter=names)
    clean_z = [clean[name] for name in names]
    if ablation == "interchange":
        _, corrupt = model.run_with_cache(prepared.batch.corrupt, names_filter=names)
        return clean_z, [corrupt[name] for name in names]
    if ablation == "zero":
        return clean_z, [torch.zeros_like(z) for z in clean_z]
    return clean_z, [z.mean(0, keepdim=True).expand_as(z) for z in clean_z]


def eap_ig_activations_scores(
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    objective: str = "logit_diff",
    ablation: str = "interchange",
    steps: int = MIB_IG_STEPS,
) -> PeerScores:
    """EAP-IG-activations scores of every edge of `forward.graph` on `prepared`."""
    metric_kind = check_objective(objective)
    kind = check_ablation(ablation)
    check_steps(steps)
    start = time.perf_counter()
    graph = forward.graph
    total = torch.zeros(len(graph.edges), dtype=torch.float64)
    n_pairs, forwards, backwards = 0, 0.0, 0.0
    for p in prepared:
        run = clean_run(forward, p)
        differences = run.stacked
        clean_z, ablated_z = head_mixes(forward, p, kind)
        clean, ablated = run.record.sources, p.ablated.sources
        nodes = [(hooks.resid_pre(0), clean[0][:, :, 0], ablated[0][:, :, 0])]
        per_layer = 2 if forward.has_mlp else 1
        for layer in range(forward.n_layers):
            nodes.append((hooks.attn_z(layer), clean_z[layer], ablated_z[layer]))
            if forward.has_mlp:
                group = 2 + layer * per_layer
                nodes.append((hooks.mlp_out(layer), clean[group][:, :, 0], ablated[group][:, :, 0]))
        alphas = [k / steps for k in range(1, steps + 1)]  # EAP-IG's rule here: 1/steps ... 1
        grid = torch.zeros(())
        with answer_logits_only(forward.model, p, metric_kind) as metric:
            for name, clean_value, ablated_value in nodes:
                grid = grid + path_gradient_grid(
                    forward, p, metric, differences, name, clean_value, ablated_value, alphas
                )
        total += edge_scores(graph, grid / (len(nodes) * steps)).double()
        n_pairs += len(p.batch)
        forwards += 2 + (kind == "interchange") + len(nodes) * steps  # records, then the steps
        backwards += len(nodes) * steps
    return PeerScores(
        "eap_ig_activations",
        (total / max(1, n_pairs)).float(),
        forwards,
        backwards,
        time.perf_counter() - start,
    )

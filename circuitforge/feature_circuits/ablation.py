"""Faithfulness and completeness of a feature circuit, by ablation (Marks et al. 2024).

Every SAE point is spliced in: `decode(f') + err'`, where a node in the kept set keeps the value
the (possibly ablated) upstream gives it and every other node takes its ablated value.
faithfulness = (m(C) - m(empty)) / (m(M) - m(empty)) keeps the circuit C;
completeness is the same ratio for M \\ C (the circuit ablated, all else kept): near 0 when the
circuit holds everything that matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.feature_circuits.attribution import Metric, PointState, flat, metric_of_residual
from circuitforge.feature_circuits.edges import KeptNodes
from circuitforge.feature_circuits.points import SAEPoint
from circuitforge.model.hooks import FwdHooks


def node_masks(points: list[SAEPoint], kept: list[KeptNodes]) -> list[tuple[Tensor, bool]]:
    masks = []
    for p, k in zip(points, kept):
        mask = torch.zeros(p.d_sae, dtype=torch.bool)
        mask[k.features] = True
        masks.append((mask, k.error))
    return masks


@torch.no_grad()
def spliced_metric(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    metric: Metric,
    ablated: list[PointState],
    keep: Sequence[tuple[Bool[Tensor, "*pos d_sae"], bool | Bool[Tensor, " pos"]]],
) -> Float[Tensor, " batch"]:
    """The metric with every node outside `keep` at its ablated value (masks per feature, or
    per position and feature with an error mask per position)."""

    def hook_for(i: int):
        point, (mask, keep_error), abl = points[i], keep[i], ablated[i]

        def hook(act: Tensor, hook) -> Tensor:
            x = flat(act).float()
            f = point.encode(x).float()
            err = x - point.decode(f)
            f = torch.where(mask.to(f.device), f, abl.f)  # mask: [d_sae] or [pos, d_sae]
            if isinstance(keep_error, Tensor):  # per position
                err = torch.where(keep_error.to(err.device)[:, None], err, abl.err)
            else:
                err = err if keep_error else abl.err
            return (point.decode(f) + err).reshape(act.shape).to(act.dtype)

        return hook

    hooks: FwdHooks = [(p.hook_name, hook_for(i)) for i, p in enumerate(points)]
    final = model.run_with_hooks(tokens, fwd_hooks=hooks, stop_at_layer=model.cfg.n_layers)
    return metric_of_residual(model, metric, final, tokens.shape[0])


def complement(
    keep: Sequence[tuple[Tensor, bool | Tensor]],
) -> list[tuple[Tensor, bool | Tensor]]:
    return [(~mask, ~error if isinstance(error, Tensor) else not error) for mask, error in keep]


def everything(points: list[SAEPoint]) -> list[tuple[Tensor, bool]]:
    return [(torch.ones(p.d_sae, dtype=torch.bool), True) for p in points]


def nothing(points: list[SAEPoint]) -> list[tuple[Tensor, bool]]:
    return [(torch.zeros(p.d_sae, dtype=torch.bool), False) for p in points]

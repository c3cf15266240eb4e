"""Node attribution: the effect on a metric of moving each SAE feature (and error term) from
its clean value to its ablated value, estimated by gradients.

A point's activation is `x = decode(f) + err` with `err = x - decode(encode(x))`, so the model
with every SAE spliced in computes exactly what the plain model computes; only where gradients
are read changes. With `g = dm/dx` at the point (the plain model's gradient):
  feature i:  (f_abl_i - f_i) * (D_i . g)      error:  (err_abl - err) . g
(attribution patching, one step). The integrated-gradients variant averages `g` over `steps`
points on the line from the clean to the ablated activation of that one point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.feature_circuits.points import SAEPoint

Metric = Callable[[Float[Tensor, "batch pos vocab"]], Float[Tensor, " batch"]]


def flat(act: Tensor) -> Tensor:
    return act.reshape(*act.shape[:2], -1)


@dataclass
class PointState:
    """One point's activation, features and error term on a batch (no graph)."""

    x: Float[Tensor, "batch pos d_in"]
    f: Float[Tensor, "batch pos d_sae"]
    err: Float[Tensor, "batch pos d_in"]


@torch.no_grad()
def point_states(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], points: list[SAEPoint]
) -> list[PointState]:
    names = {p.hook_name for p in points}
    stop = max(p.layer for p in points) + 1
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names, stop_at_layer=stop)
    states = []
    for p in points:
        x = flat(cache[p.hook_name]).float()
        f = p.encode(x).float()
        states.append(PointState(x, f, x - p.decode(f)))
    return states


def zero_states(points: list[SAEPoint], clean: list[PointState]) -> list[PointState]:
    """Zero ablation: every feature and error term at 0 (the point holds the decoder bias)."""
    return [
        PointState(p.decoder_bias.expand_as(s.x).clone(), s.f * 0, s.err * 0)
        for p, s in zip(points, clean)
    ]


def point_gradients(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    metric: Metric,
    replace: dict[int, Tensor] | None = None,
) -> tuple[Float[Tensor, " batch"], list[Float[Tensor, "batch pos d_in"]]]:
    """The metric per example and its gradient at every point (the plain model's gradients;
    `replace[i]` overrides point i's activation first)."""
    replace = replace or {}
    seen: dict[int, Tensor] = {}

    def hook_for(i: int):
        def hook(act: Tensor, hook) -> Tensor:
            if i in replace:
                act = replace[i].reshape(act.shape).to(act.dtype)
            if not act.requires_grad:  # the earliest point: the graph starts here
                act = act.detach().clone().requires_grad_(True)
            act.retain_grad()
            seen[i] = act
            return act

        return hook

    hooks = [(p.hook_name, hook_for(i)) for i, p in enumerate(points)]
    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
        value = metric(logits)
        value.sum().backward()
    grads = [flat(seen[i].grad).float() for i in range(len(points))]
    return value.detach(), grads


def ig_gradients(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    metric: Metric,
    clean: list[PointState],
    ablated: list[PointState],
    steps: int,
) -> list[Float[Tensor, "batch pos d_in"]]:
    """Per point, its gradient averaged over `steps` midpoints of the line from its clean to its
    ablated activation, the other points left clean."""
    out = []
    for i in range(len(points)):
        total = torch.zeros_like(clean[i].x)
        for step in range(steps):
            alpha = (step + 0.5) / steps
            x = clean[i].x + alpha * (ablated[i].x - clean[i].x)
            _, grads = point_gradients(model, tokens, points[i : i + 1], metric, {0: x})
            total += grads[0]
        out.append(total / steps)
    return out


@dataclass
class NodeEffects:
    """Per example and position: each feature's and the error term's estimated effect."""

    features: Float[Tensor, "batch pos d_sae"]
    error: Float[Tensor, "batch pos"]


def node_effects(
    points: list[SAEPoint],
    clean: list[PointState],
    ablated: list[PointState],
    grads: list[Float[Tensor, "batch pos d_in"]],
) -> list[NodeEffects]:
    out = []
    for p, c, a, g in zip(points, clean, ablated, grads):
        along = g @ p.decoder.T  # D_i . g for every feature
        out.append(NodeEffects((a.f - c.f) * along, ((a.err - c.err) * g).sum(-1)))
    return out

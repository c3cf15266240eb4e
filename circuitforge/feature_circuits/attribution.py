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
from circuitforge.model import hooks
from circuitforge.model.forward import embed, run_blocks, unembed

Metric = Callable[[Float[Tensor, "batch pos vocab"]], Float[Tensor, " batch"]]  # or ReadMetric


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
    return [state_of(p, cache[p.hook_name]) for p in points]


@torch.no_grad()
def state_of(point: SAEPoint, act: Tensor) -> PointState:
    """A point's state from its activation (as the hook sees it)."""
    x = flat(act.detach()).float()
    f = point.encode(x).float()
    return PointState(x, f, x - point.decode(f))


def zero_states(points: list[SAEPoint], clean: list[PointState]) -> list[PointState]:
    """Zero ablation: every feature and error term at 0 (the point holds the decoder bias)."""
    return [
        PointState(p.decoder_bias.expand_as(s.x).clone(), s.f * 0, s.err * 0)
        for p, s in zip(points, clean)
    ]


def mean_states(points: list[SAEPoint], clean: list[PointState]) -> list[PointState]:
    """Mean ablation (Marks et al.): every feature and error term at its mean over the batch's
    clean prompts, position by position (so the prompts' positions should align: one
    template); the activation is the decoded mean features plus the mean error."""
    out = []
    for p, s in zip(points, clean):
        f = s.f.mean(0, keepdim=True).expand_as(s.f)
        err = s.err.mean(0, keepdim=True).expand_as(s.err)
        out.append(PointState(p.decode(f) + err, f.clone(), err.clone()))
    return out


@dataclass(frozen=True)
class ReadMetric:
    """A metric of the logits at one position per example. Only those positions are unembedded:
    a 262k-token unembedding of every position is most of a Gemma-3-270M forward."""

    position: Int[Tensor, " batch"]
    of_logits: Callable[[Float[Tensor, "batch vocab"]], Float[Tensor, " batch"]]

    def __call__(self, logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, " batch"]:
        rows = torch.arange(logits.shape[0], device=logits.device)
        return self.of_logits(logits[rows, self.position.to(logits.device)])


def metric_of_residual(
    model: HookedTransformer,
    metric: Metric,
    final: Float[Tensor, "rows pos d_model"],
    batch: int,
) -> Float[Tensor, " rows"]:
    """The metric of the model's final residual stream, `batch` rows at a time (the rows are
    copies of one batch: IG steps)."""
    if isinstance(metric, ReadMetric):
        position = metric.position.to(final.device).repeat(final.shape[0] // batch)
        last = final[torch.arange(final.shape[0], device=final.device), position]
        logits = unembed(model, last[:, None])[:, 0]
        return torch.cat([metric.of_logits(chunk) for chunk in logits.split(batch)])
    return torch.cat([metric(chunk) for chunk in unembed(model, final).split(batch)])


def clean_pass(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    metric: Metric,
    backward: bool = True,
) -> tuple[Float[Tensor, " batch"], list[PointState], list[Tensor] | None]:
    """One pass of the clean tokens: the metric per example, every point's state, and (with
    `backward`) the metric's gradient at every point (the plain model's gradients)."""
    seen: dict[int, Tensor] = {}

    def hook_for(i: int):
        def hook(act: Tensor, hook) -> Tensor:
            if backward:
                if not act.requires_grad:  # the earliest point: the graph starts here
                    act = act.detach().clone().requires_grad_(True)
                act.retain_grad()
            seen[i] = act
            return act

        return hook

    fwd_hooks: hooks.FwdHooks = [(p.hook_name, hook_for(i)) for i, p in enumerate(points)]
    with torch.set_grad_enabled(backward):
        residual, mask = embed(model, tokens)
        with model.hooks(fwd_hooks=fwd_hooks):
            final = run_blocks(model, residual, 0, model.cfg.n_layers, mask)
        value = metric_of_residual(model, metric, final, tokens.shape[0])
        if backward:
            value.sum().backward()
    states = [state_of(p, seen[i]) for i, p in enumerate(points)]
    grads = [flat(_grad(seen[i])).float() for i in range(len(points))] if backward else None
    return value.detach(), states, grads


def point_gradients(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    points: list[SAEPoint],
    metric: Metric,
) -> tuple[Float[Tensor, " batch"], list[Float[Tensor, "batch pos d_in"]]]:
    """The metric per example and its gradient at every point (the plain model's gradients)."""
    value, _, grads = clean_pass(model, tokens, points, metric)
    assert grads is not None  # clean_pass runs the backward by default
    return value, grads


def _grad(act: Tensor) -> Tensor:
    if act.grad is None:
        raise RuntimeError("no gradient reached a point: the metric does not depend on it")
    return act.grad


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
    ablated activation, the other points left clean.

    All steps of a point go through the model as one batch (steps x batch rows), and the
    forward starts at the point's block from the clean residual stream cached there (the
    blocks before it cannot change): one forward and backward of the rest of the model per
    point, instead of `steps` whole-model passes.
    """
    residual, mask = embed(model, tokens)
    starts: dict[int, Tensor] = {}  # block -> its clean resid_pre
    with torch.no_grad():
        done = 0
        for layer in sorted({start_block(p) for p in points}):
            residual = run_blocks(model, residual, done, layer, mask)
            starts[layer], done = residual, layer
    b = tokens.shape[0]
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    out = []
    for i, p in enumerate(points):
        line = (
            clean[i].x[None]
            + alphas.to(clean[i].x.device)[:, None, None, None] * (ablated[i].x - clean[i].x)[None]
        )  # [steps, batch, pos, d_in]
        grads = gradient_from_point(
            model, p, starts[start_block(p)], line.flatten(0, 1), mask, metric, b, steps
        )
        out.append(grads.unflatten(0, (steps, b)).mean(0))
    return out


def start_block(point: SAEPoint) -> int:
    """The first block a change at the point runs through: block L for resid_pre L and for
    the points inside block L (attn, mlp, resid_mid), block L+1 for resid_post L."""
    return point.layer + 1 if point.hook_name == hooks.resid_post(point.layer) else point.layer


def enters_a_block(point: SAEPoint) -> bool:
    """resid_pre L / resid_post L is the input of a block: the forward starts from it directly;
    any other point is replaced by a hook inside its block."""
    return point.hook_name in (hooks.resid_pre(point.layer), hooks.resid_post(point.layer))


def gradient_from_point(
    model: HookedTransformer,
    point: SAEPoint,
    start: Float[Tensor, "batch pos d_model"],
    x: Float[Tensor, "rows pos d_in"],
    mask: Tensor | None,
    metric: Metric,
    batch: int,
    repeats: int,
) -> Float[Tensor, "rows pos d_in"]:
    """d(metric)/d(point activation) at each row of `x` ([repeats x batch] rows), running only
    the blocks from the point's on, from `start` (the clean resid_pre of `start_block`)."""
    x = x.detach().clone().requires_grad_(True)
    rows_mask = None if mask is None else mask.repeat(repeats, 1)
    layer = start_block(point)
    with torch.enable_grad():
        if enters_a_block(point):
            residual = x.reshape(*x.shape[:2], -1).to(start.dtype)
            with_hooks: hooks.FwdHooks = []
        else:
            residual = start.repeat(repeats, 1, 1)

            def replace(act: Tensor, hook) -> Tensor:
                return x.reshape(act.shape).to(act.dtype)

            with_hooks = [(point.hook_name, replace)]
        with model.hooks(fwd_hooks=with_hooks):
            final = run_blocks(model, residual, layer, model.cfg.n_layers, rows_mask)
        value = metric_of_residual(model, final=final, metric=metric, batch=batch)
        (grad,) = torch.autograd.grad(value.sum(), x)
    return flat(grad).float()


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

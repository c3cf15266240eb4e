"""Activation patching, exact and by attribution, over a list of cells.

Directions: `denoising` runs the corrupted prompt and copies in the clean run's activation at one
cell (does this piece restore the behaviour?); `noising` runs the clean prompt and copies in the
corrupted run's (is this piece needed?). Both are reported on one scale, the normalised logit
difference: 0 = the corrupted run's, 1 = the clean run's (`normalised`).

**Exact** (`patched_metric`): up to `cells_per_forward` cells of one layer share one forward
pass. The batch of pairs is repeated once per cell, and the hook at each cell's point writes
the source value into that cell's copy only (`patch_rows` below is where it happens). Below the
cells' layer nothing differs from the plain target run, so the pass starts at that layer, from
the target run's cached `hook_resid_pre`.

**Attribution patching** (`attribution_estimates`): one forward and one backward of the target
run, with a zero probe added at every hook of the sweep, give the metric's gradient at every
cell. The estimate of a cell is `(source - target) . gradient` over the cell's slice: the
first-order Taylor term of the exact patch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal, overload

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuitforge.analysis.cells import Cell, exact_point, source_hook, source_index
from circuitforge.analysis.runs import (
    answer_logit_difference,
    capture,
    final_residual,
    head_input_hooks,
)
from circuitforge.batches import PairBatch
from circuitforge.model import hooks
from circuitforge.model.forward import run_blocks
from circuitforge.model.internals import ungrouped_heads

Direction = Literal["denoising", "noising"]
DIRECTIONS = ("denoising", "noising")


def target_and_source(batch: PairBatch, direction: str) -> tuple[Tensor, Tensor]:
    """(the prompts that are run, the prompts whose activations are copied in)."""
    if direction == "denoising":
        return batch.corrupt, batch.clean
    if direction == "noising":
        return batch.clean, batch.corrupt
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def source_activations(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], names: set[str]
) -> dict[str, Tensor]:
    """One run of the source prompts, keeping the activations the cells copy in."""
    return capture(model, tokens, sorted(names))[0]


def uses_head_inputs(cells: list[Cell]) -> bool:
    return any(c.kind in ("q", "k", "v") for c in cells)


def _patch_rows(chunk: list[Cell], source: dict[str, Tensor], n_pairs: int) -> hooks.FwdHooks:
    """The forward hooks of one chunk: copy i of the batch gets cell i's source value."""
    at_hook: dict[str, list[tuple[int, tuple]]] = defaultdict(list)
    for i, cell in enumerate(chunk):
        name, index = exact_point(cell)
        at_hook[name].append((i, index))

    def patch_rows(act: Tensor, hook) -> Tensor:
        for i, index in at_hook[hook.name]:
            rows = slice(i * n_pairs, (i + 1) * n_pairs)
            act[(rows, *index[1:])] = source[hook.name][index].to(act.device, act.dtype)
        return act

    return [(name, patch_rows) for name in at_hook]


@torch.no_grad()
def patched_metric(
    model: HookedTransformer,
    batch: PairBatch,
    cells: list[Cell],
    direction: str,
    cells_per_forward: int = 16,
    progress: bool = False,
) -> Float[Tensor, "cells batch"]:
    """The logit difference of every pair with each cell patched (exact; batched)."""
    if cells_per_forward < 1:
        raise ValueError(f"cells_per_forward must be at least 1, got {cells_per_forward}")
    with ungrouped_heads(model, uses_head_inputs(cells)):
        return _patched_metric(model, batch, cells, direction, cells_per_forward, progress)


def _patched_metric(
    model: HookedTransformer,
    batch: PairBatch,
    cells: list[Cell],
    direction: str,
    cells_per_forward: int,
    progress: bool,
) -> Tensor:
    target, source_tokens = target_and_source(batch, direction)
    source = source_activations(model, source_tokens, {exact_point(c)[0] for c in cells})
    layers = sorted({c.layer for c in cells})
    # Up to a cell's layer the patched run is the plain target run: start there, from its cache.
    start_of = capture(model, target, [hooks.resid_pre(L) for L in layers])[0]
    n = target.shape[0]
    at_layer: dict[int, list[int]] = defaultdict(list)
    for i, cell in enumerate(cells):
        at_layer[cell.layer].append(i)
    chunks = [
        at_layer[L][s : s + cells_per_forward]
        for L in layers
        for s in range(0, len(at_layer[L]), cells_per_forward)
    ]
    out = torch.empty(len(cells), n)
    for chunk in tqdm(chunks, desc=f"{direction} patching", disable=not progress):
        layer = cells[chunk[0]].layer
        residual = start_of[hooks.resid_pre(layer)].repeat(len(chunk), 1, 1)
        with model.hooks(fwd_hooks=_patch_rows([cells[i] for i in chunk], source, n)):
            residual = run_blocks(model, residual, layer, model.cfg.n_layers)
        metric = answer_logit_difference(model, residual, batch.repeated(len(chunk)))
        out[chunk] = metric.view(len(chunk), n).float().cpu()
    return out


def attribution_estimates(
    model: HookedTransformer, batch: PairBatch, cells: list[Cell], direction: str
) -> tuple[Float[Tensor, "cells batch"], Float[Tensor, " batch"]]:
    """First-order estimates of the change in logit difference each cell's patch makes, from
    one forward/backward of the target run; and the target run's logit difference."""
    with head_input_hooks(model, uses_head_inputs(cells)):
        return _attribution_estimates(model, batch, cells, direction)


def _attribution_estimates(
    model: HookedTransformer, batch: PairBatch, cells: list[Cell], direction: str
) -> tuple[Tensor, Tensor]:
    target, source_tokens = target_and_source(batch, direction)
    source = source_activations(model, source_tokens, {source_hook(c) for c in cells})
    names = sorted({c.hook for c in cells})
    acts: dict[str, Tensor] = {}
    probes: dict[str, Tensor] = {}

    def probe(act: Tensor, hook) -> Tensor:
        acts[hook.name] = act.detach()
        probes[hook.name] = torch.zeros_like(act, requires_grad=True)
        return act + probes[hook.name]  # d metric / d probe = d metric / d act

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, probe) for name in names]):
        metric = answer_logit_difference(model, final_residual(model, target), batch)
        grads = dict(zip(names, torch.autograd.grad(metric.sum(), [probes[n] for n in names])))
    rows = []
    for cell in cells:
        here = acts[cell.hook][cell.index]
        delta = source[source_hook(cell)][source_index(cell)].to(here.device) - here
        rows.append((delta * grads[cell.hook][cell.index]).flatten(1).sum(1).float().cpu())
    return torch.stack(rows), metric.detach().float().cpu()


@overload
def normalised(value: Tensor, clean: Tensor | float, corrupt: Tensor | float) -> Tensor: ...


@overload
def normalised(value: float, clean: float, corrupt: float) -> float: ...


def normalised(
    value: Tensor | float, clean: Tensor | float, corrupt: Tensor | float
) -> Tensor | float:
    """0 = the corrupted run's logit difference, 1 = the clean run's."""
    return (value - corrupt) / (clean - corrupt)

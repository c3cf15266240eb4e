"""Activation and attribution patching against independent computations: plain TransformerLens
runs with one hand-written hook each, and autograd on a plain hooked run."""

from __future__ import annotations

import dataclasses
import random
import time
from contextlib import contextmanager
from functools import cache

import pytest
import torch
from torch.testing import assert_close

from circuitforge.analysis.cells import (
    PER_LAYER,
    PER_POSITION,
    SWEEP_KINDS,
    Cell,
    check_kind,
    grid_shape,
    sweep_cells,
)
from circuitforge.analysis.patching import attribution_estimates, patched_metric
from circuitforge.edges.objectives import logit_difference
from circuitforge.model.hooks import qkv_input, resid_pre
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from tests.analysis_models import BATCHES, LN_CONFIG, MODELS, demo, pairs

DIRECTIONS = ("denoising", "noising")


@contextmanager
def ungrouped(model):
    """Per-query-head K/V hooks (hook_k / hook_v [batch, pos, n_heads, d_head]) while inside."""
    saved = model.cfg.ungroup_grouped_query_attention
    model.cfg.ungroup_grouped_query_attention = True
    try:
        yield
    finally:
        model.cfg.ungroup_grouped_query_attention = saved


def plain_metric(logits, batch):
    return logit_difference(logits, batch.read, batch.answer, batch.wrong_answer)


def target_source(batch, direction):
    if direction == "denoising":
        return batch.corrupt, batch.clean
    return batch.clean, batch.corrupt


def reference_hook(cell: Cell) -> str:
    """The plain TransformerLens hook a cell's patch is replaced by in the reference."""
    if cell.kind in ("q", "k", "v"):
        return f"blocks.{cell.layer}.attn.hook_{cell.kind}"  # per head, under `ungrouped`
    return {
        "resid_pre": f"blocks.{cell.layer}.hook_resid_pre",
        "attn_out": f"blocks.{cell.layer}.hook_attn_out",
        "mlp_out": f"blocks.{cell.layer}.hook_mlp_out",
        "attn_layer": f"blocks.{cell.layer}.hook_attn_out",
        "mlp_layer": f"blocks.{cell.layer}.hook_mlp_out",
        "z": f"blocks.{cell.layer}.attn.hook_z",
    }[cell.kind]


def cell_slice(cell: Cell) -> tuple:
    """[batch, pos, (head)]: per-position cells one position, whole-layer cells every
    position, head cells (z, q, k, v) one head at every position."""
    if cell.kind in PER_POSITION:
        return (slice(None), cell.position)
    if cell.kind in PER_LAYER:
        return (slice(None), slice(None))
    return (slice(None), slice(None), cell.head)


@torch.no_grad()
def reference_patches(model, batch, cells, direction) -> torch.Tensor:
    """[cells, batch]: one plain `run_with_hooks` per cell with one hook, full logits."""
    target, source = target_source(batch, direction)
    out = []
    with ungrouped(model):
        names = {reference_hook(c) for c in cells}
        _, cache_ = model.run_with_cache(source, names_filter=lambda n: n in names)
        for cell in cells:
            name, where = reference_hook(cell), cell_slice(cell)

            def patch(act, hook, where=where, name=name):
                act = act.clone()
                act[where] = cache_[name][where]
                return act

            logits = model.run_with_hooks(target, fwd_hooks=[(name, patch)])
            out.append(plain_metric(logits, batch))
    return torch.stack(out)


def chosen_cells(model_name: str, kind: str) -> list[Cell]:
    model, batch = MODELS[model_name](), BATCHES[model_name]()
    cells = sweep_cells(model, kind, batch.clean.shape[1])
    if model_name == "demo" and kind in PER_POSITION:
        # the name slots (3, 5, 11), the read position (15), an unchanged early slot (1)
        cells = [c for c in cells if c.position in (1, 3, 5, 11, 15)]
    return cells


@cache
def reference(model_name: str, kind: str, direction: str) -> torch.Tensor:
    model, batch = MODELS[model_name](), BATCHES[model_name]()
    return reference_patches(model, batch, chosen_cells(model_name, kind), direction)


@cache
def unpatched(model_name: str, direction: str) -> torch.Tensor:
    model, batch = MODELS[model_name](), BATCHES[model_name]()
    with torch.no_grad():
        return plain_metric(model(target_source(batch, direction)[0]), batch)


# ---------------------------------------------------------------------------------------------
# 0. cells


def test_sweep_cells_cover_the_grid_layer_major():
    model = demo()
    for kind in SWEEP_KINDS:
        cells = sweep_cells(model, kind, 5)
        rows, columns = grid_shape(model, kind, 5)
        assert (rows, columns) == (4, 5 if kind in PER_POSITION else 1 if kind in PER_LAYER else 4)
        assert len(cells) == rows * columns == len(set(cells))
        for i, cell in enumerate(cells):
            assert cell.kind == kind and cell.layer == i // columns
            if kind in PER_POSITION:
                assert cell.position == i % columns and cell.head is None
            elif kind in PER_LAYER:
                assert cell.position is None and cell.head is None
            else:
                assert cell.position is None and cell.head == i % columns
    assert Cell("q", 2, None, 1).hook == "blocks.2.hook_q_input"
    assert Cell("mlp_out", 1, 3).hook == "blocks.1.hook_mlp_out"
    with pytest.raises(ValueError, match="sweep kind must be one of"):
        sweep_cells(model, "resid_post", 5)
    attn_only = load_frozen_model(
        FrozenModelSpec(config={**LN_CONFIG, "attn_only": True, "n_layers": 1}, seed=4242)
    )
    for kind in ("mlp_out", "mlp_layer"):
        with pytest.raises(ValueError, match="attention-only"):
            check_kind(attn_only, kind)


# ---------------------------------------------------------------------------------------------
# 1. exact patching against one plain hooked run per cell


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("kind", SWEEP_KINDS)
@pytest.mark.parametrize("model_name", ["demo", "ln"])
def test_exact_patching_matches_one_plain_run_per_cell(model_name, kind, direction):
    model, batch = MODELS[model_name](), BATCHES[model_name]()
    cells = chosen_cells(model_name, kind)
    expected = reference(model_name, kind, direction)
    # the reference must see real effects for the comparison to mean anything
    assert (expected - unpatched(model_name, direction)).abs().max() > 1e-2
    flags = (model.cfg.use_split_qkv_input, model.cfg.ungroup_grouped_query_attention)
    for per_forward in (3, 11) if kind in PER_POSITION else (3, 16):  # uneven chunks
        found = patched_metric(model, batch, cells, direction, cells_per_forward=per_forward)
        assert found.shape == (len(cells), len(batch.clean))
        assert_close(found, expected, atol=1e-4, rtol=1e-4)
    # the hook flags the sweep turned on are restored
    assert (model.cfg.use_split_qkv_input, model.cfg.ungroup_grouped_query_attention) == flags


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_exact_patching_of_mixed_cells_in_one_list(direction):
    """Cells of every kind shuffled together: chunks mix hooks, kinds and layers."""
    model, batch = demo(), BATCHES["demo"]()
    rng = random.Random(0)
    picked = []
    for kind in SWEEP_KINDS:
        cells = chosen_cells("demo", kind)
        rows = reference("demo", kind, direction)
        for i in rng.sample(range(len(cells)), 4):
            picked.append((cells[i], rows[i]))
    rng.shuffle(picked)
    found = patched_metric(model, batch, [c for c, _ in picked], direction, cells_per_forward=5)
    assert_close(found, torch.stack([r for _, r in picked]), atol=1e-4, rtol=1e-4)


def test_patching_nothing_different_changes_nothing():
    """A batch whose corrupt prompts are its clean prompts: every patch is the clean run."""
    model, pairs = demo(), BATCHES["demo"]()
    batch = dataclasses.replace(pairs, corrupt=pairs.clean)
    cells = [Cell("resid_pre", 2, 5), Cell("z", 1, None, 3), Cell("k", 0, None, 2)]
    found = patched_metric(model, batch, cells, "denoising", cells_per_forward=2)
    assert_close(found, unpatched("demo", "noising").expand(3, -1), atol=1e-4, rtol=1e-4)


def test_bad_patching_arguments():
    model, batch = demo(), BATCHES["demo"]()
    with pytest.raises(ValueError, match="cells_per_forward must be at least 1"):
        patched_metric(model, batch, [Cell("z", 0, None, 0)], "denoising", cells_per_forward=0)
    with pytest.raises(ValueError, match="direction must be one of"):
        patched_metric(model, batch, [Cell("z", 0, None, 0)], "sideways")


# ---------------------------------------------------------------------------------------------
# 2. attribution patching: the directional derivative, and how well it tracks the exact values


def directional_derivative(model, batch, cell, direction) -> torch.Tensor:
    """d/dt metric(target activation + t * (source - target) at the cell), at t = 0, per pair:
    autograd on a plain hooked run. Q/K/V cells: the head's query/key/value is recomputed from
    `ln1(resid_pre + t * delta)` with that head's weights (no split-input hooks)."""
    target, source = target_source(batch, direction)
    n = len(target)
    t = torch.zeros(n, requires_grad=True)
    layer = cell.layer
    with ungrouped(model), torch.enable_grad():
        names = {reference_hook(cell), resid_pre(layer)}
        with torch.no_grad():
            _, src = model.run_with_cache(source, names_filter=lambda x: x in names)
            _, tgt = model.run_with_cache(target, names_filter=lambda x: x in names)
        if cell.kind in ("q", "k", "v"):
            delta = src[resid_pre(layer)] - tgt[resid_pre(layer)]
            attn, h = model.blocks[layer].attn, cell.head
            weight = {"q": attn.W_Q, "k": attn.W_K, "v": attn.W_V}[cell.kind][h]
            bias = {"q": attn.b_Q, "k": attn.b_K, "v": attn.b_V}[cell.kind][h]
            resid = {}

            def keep(act, hook):
                resid["x"] = act

            def recompute(act, hook):
                moved = resid["x"] + t[:, None, None] * delta
                head = model.blocks[layer].ln1(moved) @ weight + bias
                assert_close(head.detach(), act[:, :, h], atol=1e-4, rtol=1e-4)  # t = 0
                act = act.clone()
                act[:, :, h] = head
                return act

            hooks = [(resid_pre(layer), keep), (reference_hook(cell), recompute)]
        else:
            name, where = reference_hook(cell), cell_slice(cell)
            delta = src[name][where] - tgt[name][where]
            shape = (n,) + (1,) * (delta.dim() - 1)

            def add(act, hook):
                act = act.clone()
                act[where] = act[where] + t.view(shape) * delta
                return act

            hooks = [(name, add)]
        metric = plain_metric(model.run_with_hooks(target, fwd_hooks=hooks), batch)
        (grad,) = torch.autograd.grad(metric.sum(), [t])
    return grad


@pytest.mark.parametrize("model_name", ["demo", "ln"])
def test_attribution_is_the_directional_derivative(model_name):
    model, batch = MODELS[model_name](), BATCHES[model_name]()
    rng = random.Random(1)
    for direction in DIRECTIONS:
        for kind in SWEEP_KINDS:
            cells = rng.sample(chosen_cells(model_name, kind), 2)
            estimate, base = attribution_estimates(model, batch, cells, direction)
            assert_close(base, unpatched(model_name, direction), atol=1e-4, rtol=1e-4)
            expected = torch.stack(
                [directional_derivative(model, batch, c, direction) for c in cells]
            )
            assert expected.abs().max() > 1e-3, (kind, direction)
            assert_close(estimate, expected, atol=2e-4, rtol=1e-3, msg=f"{kind} {direction}")


def test_attribution_derivative_reference_against_a_central_difference():
    """The autograd reference itself, against (m(+eps) - m(-eps)) / 2 eps on a plain run."""
    model, batch = demo(), BATCHES["demo"]()
    cell = Cell("attn_out", 2, 15)
    target, source = target_source(batch, "denoising")
    name, where = reference_hook(cell), cell_slice(cell)
    with torch.no_grad():
        _, src = model.run_with_cache(source, names_filter=name)
        _, tgt = model.run_with_cache(target, names_filter=name)
        delta = src[name][where] - tgt[name][where]
        eps, moved = 1e-2, []
        for sign in (1, -1):

            def add(act, hook, sign=sign):
                act = act.clone()
                act[where] += sign * eps * delta
                return act

            moved.append(plain_metric(model.run_with_hooks(target, fwd_hooks=[(name, add)]), batch))
    slope = (moved[0] - moved[1]) / (2 * eps)
    assert_close(
        directional_derivative(model, batch, cell, "denoising"), slope, atol=2e-2, rtol=2e-2
    )


def test_attribution_tracks_exact_patching_on_32_pairs():
    """Denoising: correlation over the cells of a sweep of the mean patched logit difference,
    exact against estimated (the normalisation is affine: the same as for normalised grids)."""
    model, batch = demo(), pairs(32, 3)
    found = {}
    start = time.time()
    for kind in SWEEP_KINDS:
        cells = sweep_cells(model, kind, batch.clean.shape[1])
        exact = patched_metric(model, batch, cells, "denoising", cells_per_forward=16).mean(1)
        change, base = attribution_estimates(model, batch, cells, "denoising")
        estimate = (change + base).mean(1)
        found[kind] = torch.corrcoef(torch.stack([exact, estimate]))[0, 1].item()
    print(f"\nattribution vs exact, denoising, 32 demo pairs ({time.time() - start:.1f} s):")
    for kind, r in found.items():
        print(f"  {kind:9s} r = {r:.4f}")
    for kind in ("resid_pre", "attn_out", "mlp_out", "z"):
        assert found[kind] > 0.9, (kind, found[kind])


@pytest.mark.parametrize("kind", ["q", "k", "v"])
def test_patching_a_heads_input_is_patching_its_query_key_value(kind):
    """The exact sweep writes a head's Q/K/V at attn.hook_q/k/v (`exact_point`); the cell is
    defined as the head's *input*. A plain run that patches the input itself (split-QKV hooks,
    the source's resid_pre copied into that head's slot) must give the same numbers."""
    model, batch = demo(), BATCHES["demo"]()
    cells = chosen_cells("demo", kind)
    target, source = target_source(batch, "denoising")
    saved = (model.cfg.use_split_qkv_input, model.cfg.ungroup_grouped_query_attention)
    model.cfg.use_split_qkv_input = model.cfg.ungroup_grouped_query_attention = True
    try:
        with torch.no_grad():
            _, cache_ = model.run_with_cache(source, names_filter=lambda n: "resid_pre" in n)
            expected = []
            for cell in cells:

                def patch(act, hook, cell=cell):
                    act = act.clone()
                    act[:, :, cell.head] = cache_[resid_pre(cell.layer)]
                    return act

                logits = model.run_with_hooks(
                    target, fwd_hooks=[(qkv_input(cell.layer, kind), patch)]
                )
                expected.append(plain_metric(logits, batch))
    finally:
        model.cfg.use_split_qkv_input, model.cfg.ungroup_grouped_query_attention = saved
    found = patched_metric(model, batch, cells, "denoising", cells_per_forward=5)
    assert_close(found, torch.stack(expected), atol=1e-4, rtol=1e-4)

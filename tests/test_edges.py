"""Edge coefficients: the graph, the one-pass masked forward against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitforge.edges.discrete import prune_dead_ends
from circuitforge.edges.faithfulness import area_metrics
from circuitforge.edges.graph import ComponentNode, EdgeGraph, GraphShape
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.reference import PassByPassForward
from circuitforge.model import hooks
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from tests.conftest import DEMO_MODEL, ROOT

GPT2_STYLE = dict(
    n_layers=3,
    d_model=32,
    n_heads=4,
    d_head=8,
    d_mlp=64,
    n_ctx=16,
    d_vocab=50,
    act_fn="gelu_new",
    normalization_type="LN",
)
# Gemma 3's attention: one shared K/V head, RMSNorm on queries and keys, local and global
# layers, and the norm after the attention block (as Gemma-3-270M, tiny).
GEMMA3_STYLE = dict(
    GPT2_STYLE,  # the same sizes
    n_key_value_heads=1,
    act_fn="gelu_pytorch_tanh",
    normalization_type="RMS",
    positional_embedding_type="rotary",
    rotary_dim=8,
    gated_mlp=True,
    final_rms=True,
    use_normalization_before_and_after=True,
    use_qk_norm=True,
    use_attn_scale=True,
    attn_types=["local", "global", "local"],
    window_size=3,
    use_local_attn=True,
    rotary_base_local=10000,
)
MODELS = {
    "gpt2_style": FrozenModelSpec(config=GPT2_STYLE, seed=1),
    "gemma3_style": FrozenModelSpec(config=GEMMA3_STYLE, seed=1),
    "gemma2_style_demo": FrozenModelSpec(path=str(DEMO_MODEL)),
    "tracr_reverse": FrozenModelSpec(path=str(ROOT / "tests/fixtures/tracr/reverse")),
}


def test_gpt2_small_has_the_edge_count_auto_circuit_and_mib_report():
    graph = EdgeGraph(GraphShape(n_layers=12, n_heads=12))
    assert len(graph.edges) == 32491  # auto-circuit's patchable GPT-2, MIB's EDGE_COUNTS
    assert len(graph.edges) == len(set(graph.edges))
    assert str(graph) == str(EdgeGraph(GraphShape(n_layers=12, n_heads=12)))  # deterministic
    unsplit = EdgeGraph(GraphShape(n_layers=12, n_heads=12), split_qkv=False)
    heads_in = sum(1 for e in graph.edges if e.dest.kind == "head")
    assert len(unsplit.edges) == len(graph.edges) - heads_in * 2 // 3


def _tokens(model, seed):
    g = torch.Generator().manual_seed(seed)
    low = 1 if model.cfg.d_vocab > 10 else 0
    return torch.randint(low, model.cfg.d_vocab - 1, (3, 5), generator=g)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(
    "options", [{}, {"split_qkv": False}, {"include_mlp": False}, {"n_positions": 5}]
)
@pytest.mark.parametrize("ablation", ["interchange", "zero"])
def test_one_pass_equals_the_pass_by_pass_original(name, options, ablation):
    model = load_frozen_model(MODELS[name])
    graph = EdgeGraph(GraphShape.of(model), **options)
    fast, slow = MaskedForward(model, graph), PassByPassForward(model, graph)
    clean, corrupt = _tokens(model, 0), _tokens(model, 1)
    ablated = fast.ablation(ablation, fast.record(clean)[0], fast.record(corrupt)[0])
    slow_ablated = slow.record(corrupt if ablation == "interchange" else clean, ablation)
    coefficients = torch.rand(len(graph.edges), generator=torch.Generator().manual_seed(2))
    c1, c2 = coefficients.clone().requires_grad_(), coefficients.clone().requires_grad_()
    a = fast(clean, ablated, dense_coefficients(graph, c1))
    b = slow(clean, slow_ablated, dense_coefficients(graph, c2))
    scale = b.abs().max()
    assert (a - b).abs().max() <= 1e-5 * max(1.0, scale)
    assert (a - model(clean)).abs().max() > 1e-3 * scale  # the coefficients did something
    (g1,) = torch.autograd.grad(a[:, -1].logsumexp(-1).sum(), c1)
    (g2,) = torch.autograd.grad(b[:, -1].logsumexp(-1).sum(), c2)
    assert torch.allclose(g1, g2, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_all_ones_is_the_clean_model_and_all_zeros_the_corrupted_one(name):
    model = load_frozen_model(MODELS[name])
    graph = EdgeGraph(GraphShape.of(model))
    forward = MaskedForward(model, graph)
    clean, corrupt = _tokens(model, 0), _tokens(model, 1)
    ablated = forward.record(corrupt)[0]
    n = len(graph.edges)
    ones = forward(clean, ablated, dense_coefficients(graph, torch.ones(n)))
    zeros = forward(clean, ablated, dense_coefficients(graph, torch.zeros(n)))
    with torch.no_grad():
        assert torch.allclose(ones, model(clean), atol=1e-4)
        assert torch.allclose(zeros, model(corrupt), atol=1e-4)


def test_cutting_every_edge_out_of_a_head_equals_patching_its_z_in_a_plain_forward():
    """Independent of our decomposition: TransformerLens with one hook on hook_z."""
    model = load_frozen_model(MODELS["gpt2_style"])
    graph = EdgeGraph(GraphShape.of(model))
    forward = MaskedForward(model, graph)
    clean, corrupt = _tokens(model, 0), _tokens(model, 1)
    head = ComponentNode("head", 1, 2)
    coefficients = torch.tensor([0.0 if e.src == head else 1.0 for e in graph.edges])
    ours = forward(clean, forward.record(corrupt)[0], dense_coefficients(graph, coefficients))
    _, cache = model.run_with_cache(corrupt, names_filter=hooks.attn_z(1))

    def patch(z, hook):
        z[:, :, 2] = cache[hooks.attn_z(1)][:, :, 2]
        return z

    with torch.no_grad():
        plain = model.run_with_hooks(clean, fwd_hooks=[(hooks.attn_z(1), patch)])
    assert torch.allclose(ours, plain, atol=1e-5)
    assert not torch.allclose(ours, model(clean), atol=1e-3)


def test_dead_end_pruning_matches_a_reachability_search():
    graph = EdgeGraph(GraphShape(n_layers=3, n_heads=2))
    for seed in range(5):
        keep = torch.rand(len(graph.edges), generator=torch.Generator().manual_seed(seed)) < 0.3
        pruned = prune_dead_ends(graph, keep)
        kept = [e for e, k in zip(graph.edges, keep.tolist()) if k]

        def reaches_logits(node, kept=kept):
            if node.kind == "logits":
                return True
            return any(reaches_logits(e.dest) for e in kept if e.src == node)

        expected = [k and reaches_logits(e.dest) for e, k in zip(graph.edges, keep.tolist())]
        assert pruned.tolist() == expected


def test_cpr_and_cmd_are_trapezoid_areas():
    x = [0.001, 0.01, 0.1, 0.5, 1.0]
    f = [0.0, 0.2, 0.9, 1.1, 1.0]
    areas = area_metrics(x, f)
    assert areas["cpr"] == pytest.approx(np.trapezoid(f, x))
    assert areas["cmd"] == pytest.approx(np.trapezoid(np.abs(1 - np.array(f)), x))


@pytest.mark.parametrize("program", ["length", "hist", "reverse", "sort_unique", "count_less_freq"])
def test_single_edge_ablation_truth_matches_the_fixtures_hook_based_lists(program):
    """circuit.json's edges_zero_ablation was computed by the converter with plain
    TransformerLens hooks on its stored examples; ours uses the masked forward on fresh pairs."""
    import json

    from circuitforge.batches import pair_batch
    from circuitforge.edges.evaluation import PreparedBatch
    from circuitforge.edges.ground_truth import ablation_truth
    from circuitforge.tasks.tracr_task import length_batches, tracr_pairs

    folder = ROOT / "tests/fixtures/tracr" / program
    model = load_frozen_model(FrozenModelSpec(path=str(folder)))
    forward = MaskedForward(model, EdgeGraph(GraphShape.of(model)))
    pairs = tracr_pairs(folder, 128, seed=7)
    batches = [pair_batch(pairs, b) for b in length_batches(pairs.read, 64, None)]
    prepared = [PreparedBatch(forward, b, "zero") for b in batches]
    ours = {(e["src"], e["dest"], e["channel"]) for e in ablation_truth(forward, prepared)}
    circuit = json.loads((folder / "circuit.json").read_text())
    theirs = {(e["src"], e["dest"], e["channel"]) for e in circuit["edges_zero_ablation"]}
    assert ours == theirs

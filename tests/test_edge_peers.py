"""The peer methods over our masked forward, each against an independent computation.

- EAP, EAP-IG-inputs, EAP-IG-activations and exact patching against EAP-IG's own `attribute`
  (hannamw/EAP-IG 7af394a, the commit MIB pins), run once by `scripts/check_peers_with_eap_ig.py`
  on a tiny GPT-2-shaped model, its scores pinned in `tests/fixtures/eap_ig_peer_scores.json`.
  Tolerance 1e-6 absolute (scores up to 0.13; measured: 1.2e-7, 1.4e-7, 1.3e-7, 4.4e-7).
- Batched exact patching against a brute-force loop of plain masked forwards, one per edge.
- The slot-gradient EAP against the coefficient-gradient EAP (two ways through the graph).
- Random: seeded, reproducible.
"""

from __future__ import annotations

import json

import pytest
import torch

from circuitforge.batches import PairBatch
from circuitforge.edges.circuit_formats import mib_edge_name
from circuitforge.edges.graph import EdgeGraph, GraphShape
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.peers import eap_ig_scores
from circuitforge.edges.peers.eap import eap_scores, edge_attribution_scores
from circuitforge.edges.peers.eap_ig_activations import eap_ig_activations_scores
from circuitforge.edges.peers.exact import exact_effects, exact_scores
from circuitforge.edges.peers.metric import answer_logits_only
from circuitforge.edges.peers.random_scores import random_scores
from circuitforge.edges.peers.registry import PEERS, PeerSettings, check_methods, score_edges
from circuitforge.edges.peers.slot_gradients import clean_run, edge_scores, slot_gradient_grid
from circuitforge.edges.prepared import PreparedBatch
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from tests.conftest import ROOT
from tests.test_edges import MODELS

FIXTURE = json.loads((ROOT / "tests/fixtures/eap_ig_peer_scores.json").read_text())
TOLERANCE = 1e-6


def pair_batch(clean, corrupt, answer, wrong, first_index=0) -> PairBatch:
    read = torch.zeros_like(clean, dtype=torch.bool)
    read[:, -1] = True
    index = torch.arange(len(clean)) + first_index
    return PairBatch(clean, corrupt, read, answer, wrong, index)


@pytest.fixture(scope="module")
def pinned():
    """The fixture's model and pairs, prepared under interchange ablation."""
    model = load_frozen_model(FrozenModelSpec(config=FIXTURE["config"], seed=FIXTURE["seed"]))
    forward = MaskedForward(model, EdgeGraph(GraphShape.of(model)))
    prepared = []
    for i, b in enumerate(FIXTURE["batches"]):
        labels = torch.tensor(b["labels"])
        batch = pair_batch(
            torch.tensor(b["clean"]), torch.tensor(b["corrupt"]), labels[:, 0], labels[:, 1], 3 * i
        )
        prepared.append(PreparedBatch(forward, batch, "interchange"))
    return forward, prepared


def library(method: str, graph: EdgeGraph) -> torch.Tensor:
    scores = FIXTURE["scores"][method]
    return torch.tensor([scores[mib_edge_name(e.src, e.dest, e.channel)] for e in graph.edges])


@pytest.mark.parametrize(
    "method,ours",
    [
        ("EAP", lambda f, p: edge_attribution_scores(f, p, "logit_diff")),
        ("EAP", lambda f, p: eap_scores(f, p, "logit_diff").scores),
        ("EAP-IG-inputs", lambda f, p: eap_ig_scores(f, p, "logit_diff", FIXTURE["ig_steps"])),
        (
            "EAP-IG-activations",
            lambda f, p: (
                eap_ig_activations_scores(
                    f, p, "logit_diff", "interchange", FIXTURE["ig_steps"]
                ).scores
            ),
        ),
        ("exact", lambda f, p: exact_scores(f, p, "logit_diff", edges_per_pass=7).scores),
    ],
)
def test_scores_equal_eap_igs_own(pinned, method, ours):
    forward, prepared = pinned
    theirs = library(method, forward.graph)
    assert len(theirs) == 46 and theirs.abs().max() > 0.05  # the edges carry something
    mine = ours(forward, prepared)
    assert (mine - theirs).abs().max().item() <= TOLERANCE, method


def test_the_methods_differ_so_the_pins_tell_them_apart(pinned):
    forward, _ = pinned
    names = ("EAP", "EAP-IG-inputs", "EAP-IG-activations", "exact")
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            gap = (library(a, forward.graph) - library(b, forward.graph)).abs().max()
            assert gap > 100 * TOLERANCE, (a, b)


def _prepared(name: str, ablation: str, options: dict | None = None):
    model = load_frozen_model(MODELS[name])
    graph = EdgeGraph(GraphShape.of(model), **(options or {}))
    forward = MaskedForward(model, graph)
    g = torch.Generator().manual_seed(5)
    clean = torch.randint(1, model.cfg.d_vocab - 1, (2, 5), generator=g)
    corrupt = torch.randint(1, model.cfg.d_vocab - 1, (2, 5), generator=g)
    batch = pair_batch(clean, corrupt, torch.tensor([3, 4]), torch.tensor([6, 7]))
    return forward, [PreparedBatch(forward, batch, ablation)]  # type: ignore[arg-type]


def brute_force_exact(
    forward: MaskedForward, prepared: list[PreparedBatch], objective: str, edges: list[int]
):
    """One plain masked forward per edge, that edge's coefficient 0, the others 1."""
    n = len(forward.graph.edges)
    out = torch.zeros(len(edges))
    with torch.no_grad():
        for p in prepared:
            full_logits = forward(
                p.batch.clean, p.ablated, dense_coefficients(forward.graph, torch.ones(n))
            )
            for i, edge in enumerate(edges):
                coefficients = torch.ones(n)
                coefficients[edge] = 0.0
                logits = forward(
                    p.batch.clean, p.ablated, dense_coefficients(forward.graph, coefficients)
                )
                if objective == "logit_diff":
                    out[i] += (p.logit_diff(full_logits) - p.logit_diff(logits)).sum()
                else:
                    predicted = p.full_log_probs.argmax(-1, keepdim=True)
                    read = p.batch.read
                    full = torch.log_softmax(full_logits[read], -1).gather(-1, predicted)
                    cut = torch.log_softmax(logits[read], -1).gather(-1, predicted)
                    out[i] += (full - cut).sum()
    return out / sum(len(p.batch) for p in prepared)


@pytest.mark.parametrize(
    "name,ablation,objective,options",
    [
        ("gpt2_style", "zero", "logit_diff", {}),
        ("gemma3_style", "interchange", "kl", {"split_qkv": False}),
        ("gemma3_style", "mean", "logit_diff", {"n_positions": 5}),
    ],
)
def test_batched_exact_patching_equals_one_plain_forward_per_edge(
    name, ablation, objective, options
):
    forward, prepared = _prepared(name, ablation, options)
    every = 3 if options is None or "n_positions" not in options else 11
    edges = list(range(0, len(forward.graph.edges), every))  # a subset, in 4-edge passes
    expected = brute_force_exact(forward, prepared, objective, edges)
    ours = exact_effects(forward, prepared, objective, edges, edges_per_pass=4)
    assert expected.abs().max() > 1e-3
    assert torch.allclose(ours, expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["gpt2_style", "gemma3_style"])
def test_slot_gradient_eap_equals_the_coefficient_gradient(name):
    forward, prepared = _prepared(name, "interchange")
    p = prepared[0]
    with answer_logits_only(forward.model, p, "logit_diff") as metric:
        grid = slot_gradient_grid(forward, p, metric, clean_run(forward, p).stacked)
    ours = edge_scores(forward.graph, grid) / len(p.batch)
    expected = edge_attribution_scores(forward, prepared, "logit_diff")
    assert expected.abs().max() > 1e-2
    assert torch.allclose(ours, expected, atol=1e-6)


def test_the_unembedding_is_restored_after_the_answer_columns():
    forward, prepared = _prepared("gpt2_style", "interchange")
    w = forward.model.unembed.W_U
    with answer_logits_only(forward.model, prepared[0], "logit_diff"):
        assert forward.model.unembed.W_U.shape[1] == 4
    assert forward.model.unembed.W_U is w


def test_random_scores_are_seeded_and_reproducible():
    a, b, c = random_scores(500, seed=3), random_scores(500, seed=3), random_scores(500, seed=4)
    assert torch.equal(a.scores, b.scores) and not torch.equal(a.scores, c.scores)
    assert a.scores.min() >= 0 and a.scores.max() < 1 and a.fb_equivalents == 0
    assert torch.equal(a.scores, torch.rand(500, generator=torch.Generator().manual_seed(3)))


def test_every_registered_peer_scores_every_edge(pinned):
    forward, prepared = pinned
    for method in PEERS:
        peer = score_edges(method, forward, prepared, PeerSettings(ig_steps=2))
        assert peer.method == method and peer.scores.shape == (len(forward.graph.edges),)
        assert torch.isfinite(peer.scores).all() and peer.seconds >= 0


def test_unknown_names_and_bad_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"unknown peer method 'acdc'; choose from \['eap'"):
        check_methods(["eap", "acdc"])
    with pytest.raises(ValueError, match="named twice"):
        check_methods(["eap", "eap"])
    with pytest.raises(ValueError, match="ablation must be one of .*got 'resample'"):
        PeerSettings(ablation="resample")
    with pytest.raises(ValueError, match="objective must be one of"):
        PeerSettings(objective="accuracy")
    with pytest.raises(ValueError, match="integrated-gradient steps must be >= 1"):
        PeerSettings(ig_steps=0)
    with pytest.raises(ValueError, match="edges_per_pass must be >= 1"):
        PeerSettings(edges_per_pass=0)


def test_the_callback_refuses_bad_comparisons_before_any_run():
    from callbacks.circuit_export import CircuitExport

    with pytest.raises(ValueError, match=r"unknown peer method 'acdc'"):
        CircuitExport(compare=["eap", "acdc"])
    with pytest.raises(ValueError, match="compare_eap was replaced by compare"):
        CircuitExport(compare_eap=True)
    with pytest.raises(ValueError, match=r"a fraction of edges must be in \(0, 1\], got 0"):
        CircuitExport(fractions=[0.0, 1.0])
    with pytest.raises(ValueError, match="integrated-gradient steps must be >= 1"):
        CircuitExport(ig_steps=0)

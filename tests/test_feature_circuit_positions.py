"""Per-position feature circuits against the summed ones they refine (the summed maths is tested
against brute force in test_feature_circuit_math.py), mean ablation against plain hooks, and
the run's attribution graph against Neuronpedia's schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from circuitforge.batches import all_pairs
from circuitforge.edges.objectives import logit_difference
from circuitforge.feature_circuits import ablation as ab
from circuitforge.feature_circuits import attribution as at
from circuitforge.feature_circuits import circuit as fc
from circuitforge.feature_circuits import edges as ed
from circuitforge.feature_circuits import positions as ps
from circuitforge.feature_circuits.edges import ERROR, KeptNodes, edge_effects
from circuitforge.feature_circuits.points import SAEGroup, load_points
from circuitforge.sae.matching import SAESource
from circuitforge.tasks.demo_tasks import demo_ioi_pairs
from circuitforge.tasks.prompt_pairs import tokenize_pairs
from lightning_modules.trainer_access import log_dir
from tests.conftest import DEMO_SAES, ROOT
from train import main


@pytest.fixture(scope="module")
def one_template(demo_model):
    """8 demo IOI pairs of template 0 (their positions align), resid SAEs of layers 0-2."""
    pts = load_points(
        demo_model, [SAEGroup(SAESource(path=str(DEMO_SAES / "layer_{layer}")), [0, 1, 2])]
    )
    pairs = tokenize_pairs(demo_model, demo_ioi_pairs(8, 3, template=0))
    batch = all_pairs(pairs)
    assert pairs.read.sum(1).eq(1).all() and pairs.read.any(0).sum() == 1  # one read position
    return demo_model, pts, batch


def test_per_position_edges_sum_to_the_summed_edges(one_template):
    model, pts, batch = one_template
    clean = at.point_states(model, batch.clean, pts)
    abl = at.point_states(model, batch.corrupt, pts)
    _, grads = at.point_gradients(model, batch.clean, pts, fc.pair_metric(batch))
    width = batch.clean.shape[1]
    summed = [KeptNodes([3, 17, 40], True), KeptNodes([5, 9], True), KeptNodes([1, 2, 8], False)]
    per_position = [  # every position of each of those nodes
        ps.PositionNodes([(i, f) for i in range(width) for f in k.indices()]) for k in summed
    ]
    want = edge_effects(model, batch.clean, pts, clean, abl, grads, summed)
    got = ps.position_edges(model, batch.clean, pts, clean, abl, grads, per_position)
    assert sorted(got) == sorted(want)
    for key, table in got.items():
        p, q = key
        up, down = len(summed[p].indices()), len(summed[q].indices())
        folded = table.reshape(width, up, width, down).sum((0, 2))
        assert_close(folded, want[key], rtol=1e-4, atol=1e-6)


def test_per_position_masks_of_every_position_are_the_summed_circuit(one_template):
    model, pts, batch = one_template
    width = batch.clean.shape[1]
    summed = [KeptNodes([3, 17, 40], True), KeptNodes([5, 9], False), KeptNodes([1, 2], True)]
    per_position = [
        ps.PositionNodes([(i, f) for i in range(width) for f in k.indices()]) for k in summed
    ]
    want = fc.circuit_quality(model, pts, [batch], summed)
    got = fc.masks_quality(model, pts, [batch], ps.position_masks(pts, per_position, width))
    assert got == pytest.approx(want, rel=1e-5)
    # keeping only the read position's nodes is a different (smaller) circuit
    read = int(batch.read[0].nonzero())
    only_read = [ps.PositionNodes([(read, f) for f in k.indices()]) for k in summed]
    smaller = fc.masks_quality(model, pts, [batch], ps.position_masks(pts, only_read, width))
    assert smaller["metric_circuit"] != pytest.approx(want["metric_circuit"], rel=1e-3)


def test_selected_nodes_are_the_largest_per_position_scores():
    f = torch.tensor([[0.0, 3.0, -1.0], [5.0, 0.0, 0.5]])
    e = torch.tensor([-4.0, 0.1])
    (kept,) = ps.select_position_nodes([f], [e], 3, None)
    assert kept.nodes == [(0, ERROR), (0, 1), (1, 0)]  # sorted: position, then feature
    (kept,) = ps.select_position_nodes([f], [e], None, 0.9)
    assert kept.nodes == [(0, ERROR), (0, 1), (0, 2), (1, 0)]


def test_mean_ablation_is_every_point_at_its_batch_mean(one_template):
    """The empty circuit under mean ablation == a plain forward with each point's activation set
    to its mean over the batch's clean prompts, position by position."""
    model, pts, batch = one_template
    clean = at.point_states(model, batch.clean, pts)
    mean = fc.ablated_states(model, pts, batch, clean, "mean")
    got = ab.spliced_metric(model, batch.clean, pts, fc.pair_metric(batch), mean, ab.nothing(pts))
    _, cache = model.run_with_cache(
        batch.clean, names_filter=lambda n: n in {p.hook_name for p in pts}
    )
    means = {p.hook_name: cache[p.hook_name].mean(0, keepdim=True) for p in pts}
    hooks = [(p.hook_name, lambda a, hook: means[hook.name].expand_as(a)) for p in pts]
    want = fc.pair_metric(batch)(model.run_with_hooks(batch.clean, fwd_hooks=hooks))
    assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def per_position_run(tmp_path_factory) -> Path:
    """The demo feature circuit with per-position nodes; its results folder."""
    cli = main(
        [
            "test",
            "--config",
            str(ROOT / "configs/feature_circuits/demo.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path_factory.mktemp('fc')}",
            "--model.init_args.positions=each",
            "--model.init_args.method=attribution",
            "--model.init_args.nodes_per_point=30",
            "--data.init_args.template=0",
            "--data.init_args.n_train=16",
            "--data.init_args.n_validation=16",
            "--trainer.enable_progress_bar=false",
        ]
    )
    return log_dir(cli.trainer) / "results"


def test_the_run_writes_an_attribution_graph_neuronpedia_reads(per_position_run):
    import jsonschema

    from circuitforge.feature_circuits.attribution_graph import GRAPH_SCHEMA, check_links

    results = per_position_run
    graph = json.loads((results / "attribution_graph.json").read_text())
    jsonschema.Draft202012Validator(json.loads(GRAPH_SCHEMA.read_text())).validate(graph)
    check_links(graph)
    ours = json.loads((results / "feature_circuit.json").read_text())
    assert ours["positions"] == "each"
    kinds = [n["feature_type"] for n in graph["nodes"]]
    assert kinds.count("logit") == 1 and kinds.count("embedding") == len(
        graph["metadata"]["prompt_tokens"]
    )
    assert kinds.count("cross layer transcoder") + kinds.count("mlp reconstruction error") == len(
        ours["nodes"]
    )
    positions = {n["position"] for n in ours["nodes"]}
    assert {
        n["ctx_idx"] for n in graph["nodes"] if n["feature_type"] != "embedding"
    } - positions <= {len(graph["metadata"]["prompt_tokens"]) - 1}
    assert len(positions) > 1  # nodes at several positions, not one summed column
    layer_of = {n["node_id"]: n["layer"] for n in graph["nodes"]}
    embeddings = {n["node_id"] for n in graph["nodes"] if n["feature_type"] == "embedding"}
    from_embeddings = [e for e in graph["links"] if e["source"] in embeddings]
    assert from_embeddings and {layer_of[e["target"]] for e in from_embeddings} == {"0"}
    assert len(from_embeddings) == len(ours["embedding_edges"])


def test_every_feature_node_has_its_feature_file_and_strongest_corpus_contexts(
    per_position_run, demo_model
):
    """Feature files (Neuronpedia's schema) for every feature node, at the node's `feature`;
    its strongest example is the feature's maximum over the corpus by a plain forward, and the
    node's activation is its mean clean activation at its position."""
    import jsonschema

    from circuitforge.data.texts import load_texts
    from circuitforge.feature_circuits.attribution_graph import FEATURE_SCHEMA

    graph = json.loads((per_position_run / "attribution_graph.json").read_text())
    ours = json.loads((per_position_run / "feature_circuit.json").read_text())
    assert graph["metadata"]["feature_details"]["feature_json_base_url"] == "features"
    validate = jsonschema.Draft202012Validator(json.loads(FEATURE_SCHEMA.read_text())).validate
    features = [n for n in graph["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert features and all(n["activation"] is not None for n in features)
    for n in features:
        validate(json.loads((per_position_run / "features" / f"{n['feature']}.json").read_text()))
    node = max((n for n in ours["nodes"] if n["feature"] != "error"), key=lambda n: abs(n["score"]))
    pts = load_points(
        demo_model, [SAEGroup(SAESource(path=str(DEMO_SAES / "layer_{layer}")), [0, 1, 2, 3])]
    )
    point = next(p for p in pts if p.name == node["id"].split("/")[0])
    texts = [t[:400] for t in load_texts(str(ROOT / "assets/demo/corpus.jsonl"), 500)]
    best = 0.0
    for text in texts:  # the brute-force maximum, one document at a time
        tokens = demo_model.to_tokens(text)
        _, cache = demo_model.run_with_cache(tokens, names_filter=point.hook_name)
        best = max(
            best,
            float(point.encode(cache[point.hook_name][0, 1:]).float()[:, node["feature"]].max()),
        )
    top = node["contexts"][0]
    assert max(top["activations"]) == pytest.approx(best, rel=1e-4)
    assert len(top["tokens"]) == len(top["activations"]) and 0 < len(node["contexts"]) <= 5
    scored = tokenize_pairs(demo_model, demo_ioi_pairs(16, 0, template=0)).clean  # the run's
    clean = at.point_states(demo_model, scored, [point])[0].f
    mean = float(clean[:, node["position"], node["feature"]].mean())
    assert node["activation"] == pytest.approx(mean, rel=1e-4, abs=1e-6)


def test_the_feature_circuit_page_shows_the_graph_and_a_clicked_nodes_details(per_position_run):
    from tests.browser import browser_page

    ours = json.loads((per_position_run / "feature_circuit.json").read_text())
    with browser_page() as page:
        page.goto((per_position_run / "feature_circuit.html").as_uri())
        assert page.locator("circle").count() == len(ours["nodes"])
        node = max(ours["nodes"], key=lambda n: abs(n["score"]))
        assert not page.is_visible("#details h3")
        page.click(f"circle[data-id='{node['id']}']")
        details = page.inner_text("#details")
        assert node["id"] in details and repr(node["token"]) in page.inner_text("#details h3")
        linked = [e for e in ours["edges"] if node["id"] in (e["source"], e["target"])]
        shown = page.locator("line").evaluate_all(
            "ls => ls.filter(l => l.style.display !== 'none').length"
        )
        assert shown == len(linked)  # only the clicked node's links stay drawn
        feature = max(
            (n for n in ours["nodes"] if n["feature"] != "error"), key=lambda n: abs(n["score"])
        )
        page.click(f"circle[data-id='{feature['id']}']")
        assert "top contexts" in page.inner_text("#details")
        spans = page.locator("#details p.context span")
        assert spans.count() == sum(len(c["tokens"]) for c in feature["contexts"])
        page.screenshot(path=str(per_position_run / "feature_circuit_page.png"))
        assert page.errors == []


def whole_metric(batch):  # the logit difference read from the whole logits
    def metric(logits):  # any multiple k of the batch (IG steps)
        k = logits.shape[0] // len(batch.answer)
        answers = batch.answer.repeat(k), batch.wrong_answer.repeat(k)
        return logit_difference(logits, batch.read.repeat(k, 1), *answers)

    return metric


def test_reading_only_the_read_position_changes_nothing(one_template):
    """pair_metric unembeds each prompt's read position only: the same values and gradients as
    the logit difference of the whole logits, in the one-step pass and in IG."""
    model, pts, batch = one_template
    read_only, whole = fc.pair_metric(batch), whole_metric(batch)

    value, clean, grads = at.clean_pass(model, batch.clean, pts, read_only)
    want_value, want_clean, want_grads = at.clean_pass(model, batch.clean, pts, whole)
    assert_close(value, want_value)
    assert_close(value, whole(model(batch.clean)))
    assert grads is not None and want_grads is not None
    assert_close(grads, want_grads)
    assert all(g.abs().max() > 0 for g in grads)
    abl = at.point_states(model, batch.corrupt, pts)
    ig = at.ig_gradients(model, batch.clean, pts, read_only, clean, abl, 3)
    assert_close(ig, at.ig_gradients(model, batch.clean, pts, whole, want_clean, abl, 3))


def test_edges_reusing_the_attribution_pass_states_equal_recomputed_ones(one_template):
    model, pts, batch = one_template
    kept = [KeptNodes([3, 17, 40], True), KeptNodes([5, 9], True), KeptNodes([1, 2, 8], False)]
    for method in ("attribution", "ig"):  # after IG the gradients are recomputed, not reused
        found = fc.batch_attribution(model, pts, batch, "interchange", method, 2)
        assert (found.states.grads is None) == (method == "ig")
        reused = fc.summed_edges(model, pts, [batch], kept, states=[found.states])
        assert_close(reused, fc.summed_edges(model, pts, [batch], kept))
        (filled,) = fc.with_gradients(model, pts, [batch], [found.states])
        assert filled is not None
        assert_close(
            filled.grads, at.point_gradients(model, batch.clean, pts, whole_metric(batch))[1]
        )
    assert fc.with_gradients(model, pts, [batch], [None]) == [None]  # dropped: not refilled


def test_edges_refuse_an_encoder_that_is_not_active_times_affine(one_template):
    model, pts, batch = one_template
    point = pts[0]
    x = at.point_states(model, batch.clean, pts)[0].x.flatten(0, 1)
    f = point.encode(x).float()
    often = f.count_nonzero(0).topk(2).indices.tolist()  # features active on some rows
    assert ed.feature_directions(point, x, f, often).abs().amax(1).gt(0).all()
    squared = copy.copy(point)
    squared.encode = lambda x: point.encode(x) ** 2  # not [active] * affine(x)
    with pytest.raises(ValueError, match="not \\[active\\] \\* affine"):
        ed.feature_directions(squared, x, squared.encode(x).float(), often)

"""The feature circuit through `train.py test`, its files against plain TransformerLens runs."""

import json
from pathlib import Path

import pytest
import torch

from circuitforge.edges.objectives import logit_difference
from circuitforge.tasks.demo_tasks import demo_ioi_pairs
from circuitforge.tasks.prompt_pairs import tokenize_pairs
from tests.conftest import ROOT, results_of
from train import main

CONFIG = ROOT / "configs" / "feature_circuits" / "demo.yaml"


def circuit_args(tmp_path, *extra):
    return [
        "test",
        "--config",
        str(CONFIG),
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--data.init_args.n_train=16",
        "--data.init_args.n_validation=16",
        "--model.init_args.method=attribution",
        "--model.init_args.nodes_per_point=8",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("feature_circuit")
    cli = main(circuit_args(save_dir))
    return cli, json.loads(results_of(save_dir, "feature_circuit.json").read_text())


def test_the_circuit_file(run, demo_model):
    cli, found = run
    ids = {n["id"] for n in found["nodes"]}
    assert len(ids) == len(found["nodes"]) == 4 * (8 + 1)  # 8 features + the error, 4 points
    for node in found["nodes"]:
        assert {"layer", "sublayer", "hook_name", "feature", "position", "score"} <= set(node)
        if node["feature"] != "error":
            assert len(node["promoted"]) == len(node["suppressed"]) == 5
    assert found["edges"] and all(e["source"] in ids and e["target"] in ids for e in found["edges"])
    layers = {n["id"]: n["layer"] for n in found["nodes"]}
    assert all(layers[e["target"]] == layers[e["source"]] + 1 for e in found["edges"])
    picture = Path(cli.trainer.log_dir) / "results" / "feature_circuit.png"
    assert picture.stat().st_size > 1000


def test_full_and_empty_metrics_are_the_plain_clean_and_corrupt_runs(run, demo_model):
    _, found = run
    pairs = tokenize_pairs(demo_model, demo_ioi_pairs(16, seed=1))  # the held-out pairs
    with torch.no_grad():
        clean = logit_difference(
            demo_model(pairs.clean), pairs.read, pairs.answer, pairs.wrong_answer
        )
        corrupt = logit_difference(
            demo_model(pairs.corrupt), pairs.read, pairs.answer, pairs.wrong_answer
        )
    # every point spliced with its error term changes nothing; every node ablated at the last
    # residual point (resid_post 3, the final residual stream) is the corrupted run itself
    assert found["metric"]["full"] == pytest.approx(float(clean.mean()), abs=1e-3)
    assert found["metric"]["empty"] == pytest.approx(float(corrupt.mean()), abs=1e-3)
    span = found["metric"]["full"] - found["metric"]["empty"]
    faithful = (found["metric"]["circuit"] - found["metric"]["empty"]) / span
    assert found["faithfulness"] == pytest.approx(faithful)


def test_the_error_shares_hold_each_points_error_node_score(run):
    _, found = run  # summed nodes: every point keeps its error term, a node of the file
    nodes = {n["id"]: n["score"] for n in found["nodes"]}
    names = [r["point"] for r in found["error_shares"]]
    assert len(names) == len(found["points"]) == 4
    for row in found["error_shares"]:
        error = nodes[f"{row['point']}/error"]
        assert row["error_sum"] == pytest.approx(error, rel=1e-5, abs=1e-7)
        share = row["error_sum"] / (row["feature_sum"] + row["error_sum"])
        assert row["error_share"] == pytest.approx(share)
        assert 0.0 <= row["error_abs_share"] <= 1.0


def test_tensorboard_gets_the_table_and_the_picture(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cli, _ = run
    events = EventAccumulator(cli.trainer.log_dir, size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert "feature_circuit/graph" in events.Tags()["images"]
    assert "feature_circuit/nodes/text_summary" in events.Tags()["tensors"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            '--model.init_args.saes=[{"source": {"path": "assets/demo/saes/layer_{layer}"}, '
            '"layers": [4]}]',
            "SAE layer 4 out of range",
        ),
        ("--model.init_args.ig_steps=0", "ig_steps must be at least 1"),
    ],
)
def test_bad_arguments(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        main(circuit_args(tmp_path, "--model.init_args.method=ig", extra))

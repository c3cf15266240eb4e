"""Edge discovery says when its circuit means nothing, and picks a metric that can tell circuits
apart: MSE for a numerical (one-output) program, where every KL is 0."""

from __future__ import annotations

import pytest

from circuitforge.edges.evaluation import circuit_failures
from circuitforge.edges.objectives import keep_metric_for
from tests.test_edge_runs import ablation_args, fit, result


@pytest.mark.parametrize("ablation", ["zero", "interchange"])
def test_a_numerical_program_is_recovered_with_the_default_keep_rule(tmp_path, ablation):
    """frac_prevs has one output: with a KL keep rule its circuit was empty ('kl: 0.0')."""
    cli = fit(tmp_path, "configs/edges/tracr_frac_prevs.yaml", *ablation_args(ablation))
    out = result(cli)
    assert out["metrics"]["keep_metric"] == "mse" and out["failure"] is None
    match = out["ground_truth_match"]
    assert match["exact"], (match["missing"], match["extra"])


def test_a_metric_that_cannot_tell_full_from_empty_is_reported(tmp_path):
    """length under interchange: same-length inputs give the same output, so no edge matters;
    the run says so instead of presenting an empty circuit as a finding."""
    cli = fit(tmp_path, "configs/edges/tracr_length.yaml", *ablation_args("interchange"))
    out = result(cli)
    metric = out["metrics"]["keep_metric"]  # mse in the tracr configs
    assert out["failure"].startswith(f"the {metric} cannot tell the full model from the empty")
    assert "the kept circuit is empty" in out["failure"]


def test_a_kl_on_one_output_is_refused(tmp_path):
    with pytest.raises(ValueError, match="one-logit softmax is 0 for every circuit"):
        fit(tmp_path, "configs/edges/tracr_frac_prevs.yaml", "--model.init_args.objective=kl")
    with pytest.raises(ValueError, match="use keep_metric: mse"):
        keep_metric_for(1, "kl")
    assert keep_metric_for(1, "auto") == "mse" and keep_metric_for(6, "auto") == "kl"


def test_circuit_failures_name_the_empty_and_the_whole_circuit():
    assert circuit_failures(3, 10, 0.5, "kl") == []
    assert circuit_failures(0, 10, 0.5, "kl") == ["the kept circuit is empty"]
    (whole,) = circuit_failures(10, 10, 0.5, "mse")
    assert whole.startswith("the kept circuit is the whole graph (10 edges)")
    (constant, empty) = circuit_failures(0, 10, 0.0, "kl")
    assert "kl of the empty circuit = 0" in constant and empty == "the kept circuit is empty"


@pytest.mark.parametrize("ablation", ["zero", "interchange"])
def test_pruning_one_at_a_time_recovers_the_truth_from_scores_that_rank_it_last(ablation):
    """count_less_freq, scores that put every true edge below every other: the fewest-top-edges
    search must keep the whole graph; pruning then leaves exactly the fixture's hook-based truth
    (circuit.json), an independent computation."""
    import json

    import torch

    from circuitforge.batches import pair_batch
    from circuitforge.edges.graph import EdgeGraph, GraphShape
    from circuitforge.edges.keep_rule import prune_one_at_a_time, smallest_faithful_circuit
    from circuitforge.edges.masked_forward import MaskedForward
    from circuitforge.edges.prepared import PreparedBatch
    from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
    from circuitforge.tasks.tracr_task import length_batches, tracr_pairs
    from tests.conftest import ROOT

    folder = ROOT / "tests/fixtures/tracr/count_less_freq"
    model = load_frozen_model(FrozenModelSpec(path=str(folder)))
    forward = MaskedForward(model, EdgeGraph(GraphShape.of(model)))
    pairs = tracr_pairs(folder, 128, seed=3)
    batches = [pair_batch(pairs, b) for b in length_batches(pairs.read, 64, None)]
    prepared = [PreparedBatch(forward, b, ablation) for b in batches]
    truth = {
        f"{e['src']}->{e['dest']}" + (f"[{e['channel']}]" if e["channel"] else "")
        for e in json.loads((folder / "circuit.json").read_text())[f"edges_{ablation}_ablation"]
    }
    names = [e.name for e in forward.graph.edges]
    assert truth and truth < set(names)
    scores = torch.tensor([0.0 if name in truth else 1.0 for name in names])
    prefix = smallest_faithful_circuit(forward, prepared, scores, 1e-5)
    assert int(prefix.sum()) == len(names)  # the ranking alone keeps everything
    pruned = prune_one_at_a_time(forward, prepared, scores, prefix, 1e-5)
    assert {n for n, k in zip(names, pruned.tolist()) if k} == truth


def test_prune_kept_needs_a_distance_to_keep(tmp_path):
    with pytest.raises(ValueError, match="prune_kept needs keep_kl"):
        fit(
            tmp_path,
            "configs/edges/tracr_hist.yaml",
            "--model.init_args.prune_kept=true",
            "--model.init_args.keep_kl=null",
        )

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
    assert out["failure"].startswith("the kl cannot tell the full model from the empty circuit")
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

"""The error terms' share of a feature circuit's scores (`feature_circuits.shares`), against
sums written out by hand."""

import pytest
import torch

from circuitforge.feature_circuits.shares import error_shares


def test_per_position_shares_are_the_hand_sums():
    features = torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]])  # [pos 2, d_sae 3]
    errors = torch.tensor([4.0, -1.5])
    (row,) = error_shares(["resid5"], [features], [errors])
    # features: 1 - 2 + 0.5 + 3 = 2.5; errors: 4 - 1.5 = 2.5; |.|: 6.5 and 5.5
    assert row["point"] == "resid5"
    assert row["feature_sum"] == pytest.approx(2.5)
    assert row["error_sum"] == pytest.approx(2.5)
    assert row["error_share"] == pytest.approx(2.5 / 5.0)
    assert row["error_abs_share"] == pytest.approx(5.5 / 12.0)


def test_summed_nodes_take_one_error_score_per_point():
    rows = error_shares(
        ["resid2", "resid8"], [torch.tensor([1.0, 1.0]), torch.tensor([0.0, -1.0])], [2.0, 3.0]
    )
    assert [r["error_share"] for r in rows] == pytest.approx([2.0 / 4.0, 3.0 / 2.0])
    assert [r["error_abs_share"] for r in rows] == pytest.approx([2.0 / 4.0, 3.0 / 4.0])


def test_no_score_at_all_gives_none_not_nan():
    (row,) = error_shares(["resid2"], [torch.zeros(2, 3)], [torch.zeros(2)])
    assert row["error_share"] is None and row["error_abs_share"] is None


def test_mismatched_inputs_are_refused_in_one_line():
    with pytest.raises(ValueError, match="one of each per point"):
        error_shares(["a", "b"], [torch.zeros(3)], [0.0])
    with pytest.raises(ValueError, match="one error score per position"):
        error_shares(["a"], [torch.zeros(2, 3)], [torch.zeros(3)])

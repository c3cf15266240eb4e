"""Our CPR and CMD are MIB's: numbers computed by MIB's own evaluation code, pinned.

The pinned numbers come from `MIB_circuit_track/evaluation.py::evaluate_area_under_curve`
(hannamw/MIB-circuit-track, commit b759df34433c9e31043ba9e02908ce0bf20e894f) run once with
EAP-IG's `Graph` (`src/eap/graph.py`, hannamw/EAP-IG commit
7af394a5662de8b23ad6154716a0cd3993d447a3: `apply_topn`, `prune`) on a 6-layer, 4-head graph
with the score table below, its `evaluate_baseline` / `evaluate_graph` replaced by the additive
metric below (m(C) = 0.25 + the sum of the effects of C's edges, after EAP-IG's pruning). CPR is
`area_under` with `absolute=False`, CMD `area_from_1` with `absolute=True`, as MIB's
`print_results.py` picks them. MIB's code is not in this repository.
"""

from __future__ import annotations

import math

import pytest
import torch

from circuitforge.edges.circuit_formats import mib_edge_name
from circuitforge.edges.faithfulness import (
    MIB_FRACTIONS,
    area_metrics,
    check_fractions,
    connected,
    curve_of,
    mib_edge_count,
    mib_scores,
    ranked_top,
)
from circuitforge.edges.graph import EdgeGraph, GraphShape

# evaluate_area_under_curve's faithfulnesses and areas, and the edges of each circuit it
# evaluated (counted after `evaluate_graph`'s own `graph.prune()`). Its `weighted_edge_counts`
# differ (signed 40 and 91 at 5 and 10%; absolute 37 and 85): they are counted after
# `apply_topn`, whose prune at this EAP-IG commit stops after one pass when `apply_topn` has
# already set the nodes (the loop compares the nodes before and after it; fixed upstream in
# EAP-IG 55a2be2); the circuit evaluated is the fully pruned one, as ours.
MIB = {
    "signed": {
        "n_edges": [1, 1, 1, 3, 9, 39, 85, 207, 554, 1108],
        "faithfulness": [0.020461134370588198, 0.020461134370588198, 0.020461134370588198,
                         0.04732365396510178, 0.1292651567955877, 0.4498591712246094,
                         0.8739487190805451, 1.8169085459679806, 3.1410213715783133,
                         1.0000000000000013],
        "area_under": 1.956404006519006,
        "area_from_1": 1.0821765091308377,
    },
    "absolute": {
        "n_edges": [1, 1, 1, 3, 9, 34, 82, 209, 515, 1108],
        "faithfulness": [0.020461134370588198, 0.020461134370588198, 0.020461134370588198,
                         0.04732365396510178, 0.1292651567955877, 0.32806173920985704,
                         0.40110743043419655, 0.5704620284645849, 0.7519740785446961,
                         1.0000000000000013],
        "area_under": 0.7111607918758136,
        "area_from_1": 0.28783920812418706,
    },
}  # fmt: skip
EMPTY = 0.25


def table(graph: EdgeGraph) -> tuple[torch.Tensor, torch.Tensor]:
    """The side script's score and effect per edge, from the edge's index among MIB's sorted
    edge names (a permutation of distinct values, with a bonus for edges from the input and
    into the logits, so that top edges form paths; effects follow the scores, with noise)."""
    names = [mib_edge_name(e.src, e.dest, e.channel) for e in graph.edges]
    index = {name: i for i, name in enumerate(sorted(names))}
    n = len(names)
    scores, effects = [], []
    for name in names:
        i = index[name]
        k = (i * 389) % n - n // 2
        bonus = 3.14159 * (name.startswith("input->") + name.endswith("->logits"))
        score = (k + 0.3) / 97 + bonus
        scores.append(score)
        effects.append(0.4 * score + 0.3 * math.sin(i) + 0.1)
    return torch.tensor(scores, dtype=torch.float64), torch.tensor(effects, dtype=torch.float64)


@pytest.fixture(scope="module")
def graph() -> EdgeGraph:
    graph = EdgeGraph(GraphShape(n_layers=6, n_heads=4))
    assert len(graph.edges) == 1108  # EAP-IG's edge count for this shape
    return graph


def additive(effects: torch.Tensor):
    full = EMPTY + effects.sum().item()

    def evaluate(keep: torch.Tensor) -> dict:
        circuit = EMPTY + effects[keep].sum().item()
        return {"faithfulness": (circuit - EMPTY) / (full - EMPTY)}

    return evaluate


def test_cpr_and_cmd_are_the_numbers_mibs_own_code_gives(graph):
    scores, effects = table(graph)
    result = mib_scores(graph, scores, additive(effects))
    for ranking, curve in (("signed", result.signed), ("absolute", result.absolute)):
        mib = MIB[ranking]
        assert [p["n_edges"] for p in curve.points] == mib["n_edges"], ranking
        assert [p["faithfulness"] for p in curve.points] == pytest.approx(
            mib["faithfulness"], rel=1e-9
        )
        assert curve.area_under == pytest.approx(mib["area_under"], rel=1e-9)
        assert curve.area_from_1 == pytest.approx(mib["area_from_1"], rel=1e-9)
    assert result.cpr == pytest.approx(1.956404006519006, rel=1e-9)  # > 1: beats the model
    assert result.cmd == pytest.approx(0.28783920812418706, rel=1e-9)


def test_the_number_of_edges_is_rounded_down_before_pruning(graph):
    n = len(graph.edges)
    counts = [mib_edge_count(f, n) for f in MIB_FRACTIONS]
    assert counts == [1, 2, 5, 11, 22, 55, 110, 221, 554, 1108]  # int(), not round()
    scores, _ = table(graph)
    for count in counts:
        assert int(ranked_top(scores, count, "signed").sum()) == count


def test_pruning_keeps_the_kept_edges_on_input_to_logits_paths():
    """Checked against a plain reachability computation on a small graph."""
    graph = EdgeGraph(GraphShape(n_layers=2, n_heads=2))
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        keep = torch.rand(len(graph.edges), generator=generator) < 0.3
        kept = [e for e, k in zip(graph.edges, keep.tolist()) if k]
        forward_reach, backward_reach = {"input"}, {"logits"}
        for _ in range(len(kept)):
            forward_reach |= {e.dest.name for e in kept if e.src.name in forward_reach}
            backward_reach |= {e.src.name for e in kept if e.dest.name in backward_reach}
        expected = [
            k and e.src.name in forward_reach and e.dest.name in backward_reach
            for e, k in zip(graph.edges, keep.tolist())
        ]
        assert connected(graph, keep).tolist() == expected


def test_scores_without_negatives_give_one_ranking(graph):
    scores, effects = table(graph)
    result = mib_scores(graph, scores.abs(), additive(effects))
    assert result.absolute.points == result.signed.points
    alone = curve_of(graph, scores.abs(), "absolute", additive(effects))
    assert alone.area_from_1 == pytest.approx(result.cmd)


def test_areas_are_trapezoids_over_the_fractions_unclipped():
    x, f = [0.001, 0.01, 0.5, 1.0], [0.5, 2.0, -1.0, 1.0]
    expected_under = 0.009 * 1.25 + 0.49 * 0.5 + 0.5 * 0.0
    expected_from_1 = 0.009 * (0.5 + 1.0) / 2 + 0.49 * (1.0 + 2.0) / 2 + 0.5 * (2.0 + 0.0) / 2
    areas = area_metrics(x, f)
    assert areas["cpr"] == pytest.approx(expected_under)
    assert areas["cmd"] == pytest.approx(expected_from_1)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_a_fraction_outside_0_1_is_refused(fraction):
    with pytest.raises(ValueError, match=r"a fraction of edges must be in \(0, 1\]"):
        check_fractions([fraction, 1.0])
    with pytest.raises(ValueError, match=r"a fraction of edges must be in \(0, 1\]"):
        mib_edge_count(fraction, 100)


def test_fractions_must_increase_and_rankings_be_known(graph):
    with pytest.raises(ValueError, match="increasing"):
        check_fractions([0.5, 0.1])
    with pytest.raises(ValueError, match="ranking must be signed or absolute"):
        ranked_top(torch.zeros(3), 1, "abs")  # type: ignore[arg-type]


def test_the_callback_refuses_a_bad_fraction_before_any_run():
    from callbacks.circuit_export import CircuitExport

    with pytest.raises(ValueError, match=r"a fraction of edges must be in \(0, 1\], got 2"):
        CircuitExport(fractions=[0.5, 2.0])


def test_an_unknown_ablation_is_refused_in_one_line(tmp_path):
    from circuitforge.edges.masked_forward import MaskedForward
    from circuitforge.edges.prepared import PreparedBatch
    from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
    from tests.conftest import ROOT

    model = load_frozen_model(FrozenModelSpec(path=str(ROOT / "tests/fixtures/tracr/reverse")))
    forward = MaskedForward(model, EdgeGraph(GraphShape.of(model)))
    with pytest.raises(ValueError, match="ablation must be one of .*got 'resample'"):
        PreparedBatch(forward, {}, "resample")  # type: ignore[arg-type]


def test_an_unknown_ablation_is_refused_by_the_run_before_the_model_loads(tmp_path):
    from tests.test_edge_runs import fit

    with pytest.raises(ValueError, match="ablation must be one of .*got 'resample'"):
        fit(tmp_path, "configs/edges/tracr_reverse.yaml", "--model.init_args.ablation=resample")

"""The learned edge recipes (issue 27): UGS sampling, the Lagrangian sparsity term, the warm start
from scores, nested budgets, and the refusals; each against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from circuitforge.edges import parameterisation as param
from circuitforge.edges.budgets import NestedBudgets, drop_outside_budget, nested_importance
from circuitforge.edges.faithfulness import MIB_FRACTIONS
from circuitforge.edges.graph import EdgeGraph, GraphShape
from circuitforge.edges.sparsity import SparsityTerm, lagrangian_penalty, relu_penalty
from circuitforge.edges.warm_start import warm_start_parameters
from circuitforge.model.spec import FrozenModelSpec
from lightning_modules.edge_coefficients import EdgeCoefficientsModule
from tests.conftest import DEMO_MODEL


def test_ugs_sample_is_0_or_1_outside_its_window_and_its_gradient_is_dp_inside():
    theta = torch.linspace(-3, 3, 13, dtype=torch.float64).requires_grad_()
    p0 = torch.sigmoid(theta.detach())
    offsets = torch.tensor([-0.9, -0.3, 0.0, 0.2, 0.45, 0.7, -0.6] * 2, dtype=torch.float64)[:13]
    u = p0 + offsets * p0 * (1 - p0)  # some inside the window (|offset| < 1/2), some outside
    mask = param.ugs_sample(theta, u)
    (grad,) = torch.autograd.grad(mask.sum(), theta)
    p = 1 / (1 + np.exp(-theta.detach().numpy()))
    w = p * (1 - p)
    expected = np.clip(0.5 - (u.numpy() - p) / w, 0, 1)  # 1 below p - w/2, 0 above p + w/2
    assert np.allclose(mask.detach().numpy(), expected)
    inside = (expected > 0) & (expected < 1)
    assert inside.sum() >= 4 and (~inside).sum() >= 4
    assert np.allclose(grad.numpy(), np.where(inside, p * (1 - p), 0.0))
    assert param.density("ugs", theta).item() == pytest.approx(p.mean())


def test_ugs_samples_commit_and_average_to_the_keep_probability():
    theta = torch.full((200_000,), 1.0)
    samples = param.coefficients("ugs", theta, sample=True)
    committed = ((samples == 0) | (samples == 1)).float().mean().item()
    assert committed > 0.75  # the window is p(1 - p) = 0.197 wide
    assert samples.mean().item() == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.005)


def test_lagrangian_is_edge_prunings_and_the_multipliers_ascend():
    density, lambdas = torch.tensor(0.3), torch.tensor([0.5, 2.0], requires_grad=True)
    penalty = lagrangian_penalty(density, 0.9, lambdas)
    s = 1 - 0.3  # sparsity 0.7 against the target 0.9
    assert penalty.item() == pytest.approx(0.5 * (s - 0.9) + 2.0 * (s - 0.9) ** 2)
    optimiser = torch.optim.Adam([{"params": [lambdas], "lr": 0.1, "maximize": True}])
    penalty.backward()
    optimiser.step()
    # ascent: lambda_1 moves along s - t < 0, lambda_2 along (s - t)^2 > 0
    assert lambdas[0].item() == pytest.approx(0.4) and lambdas[1].item() == pytest.approx(2.1)
    assert relu_penalty(density, 0.9, 3.0).item() == pytest.approx(3.0 * (0.3 - 0.1))


def test_the_old_flat_settings_mean_the_same_ramp():
    term = SparsityTerm("relu", 1.0 - 0.2, 0.0, 60, 1.0)
    for step in (0, 10, 30, 60, 90):
        old = 1.0 - (1.0 - 0.2) * min(1.0, step / 60)  # the target density before issue 27
        assert 1.0 - term.target_at(step) == pytest.approx(old)


def _mib_warm_start(scores, sparsity, tau):
    """scores_to_logalphas.py's steps (one group), written out with numpy."""
    v = np.abs(scores)
    q = np.empty(len(v))
    q[np.argsort(v, kind="stable")] = np.arange(len(v)) / (len(v) - 1)
    low, high = 0.0, 1.0
    for _ in range(50):
        b = (low + high) / 2
        if (1 / (1 + np.exp(-(q - b) / tau))).mean() > 1 - sparsity:
            low = b
        else:
            high = b
    return 1 / (1 + np.exp(-(q - (low + high) / 2) / tau))


@pytest.mark.parametrize("kind", ["hard_concrete", "sigmoid", "ugs"])
def test_warm_start_gives_mibs_keep_probabilities(kind):
    graph = EdgeGraph(GraphShape(n_layers=2, n_heads=2))
    scores = torch.randn(len(graph.edges), generator=torch.Generator().manual_seed(3))
    theta = warm_start_parameters(graph, scores, kind, sparsity=0.8, tau=0.2, per_layer=False)
    expected = _mib_warm_start(scores.double().numpy(), 0.8, 0.2)
    if kind == "hard_concrete":  # MIB's inverse: the stretched sigmoid(log_alpha / beta) is p
        s = torch.sigmoid(theta.double() / param.BETA) * (param.ZETA - param.GAMMA) + param.GAMMA
        got = s.numpy()
    else:
        got = torch.sigmoid(theta.double()).numpy()
    assert np.allclose(got, expected, atol=1e-5)
    assert expected.mean() == pytest.approx(0.2, abs=1e-3)


def test_warm_start_ranks_within_each_destination_layer():
    graph = EdgeGraph(GraphShape(n_layers=3, n_heads=2))
    scores = torch.randn(len(graph.edges), generator=torch.Generator().manual_seed(4))
    theta = warm_start_parameters(graph, scores, "sigmoid", sparsity=0.5)
    for layer in (-1, 0, 1, 2):
        members = [i for i, e in enumerate(graph.edges)
                   if (e.dest.layer if e.dest.kind != "logits" else -1) == layer]  # fmt: skip
        by_score = sorted(members, key=lambda i: (abs(scores[i].item()), i))
        by_theta = sorted(members, key=lambda i: (theta[i].item(), i))
        assert by_score == by_theta
        assert torch.sigmoid(theta[members]).mean().item() == pytest.approx(0.5, abs=0.02)


def test_nested_budgets_rank_every_stages_circuit_first():
    budgets = NestedBudgets(MIB_FRACTIONS, steps_per_budget=3)
    n = 2000
    g = torch.Generator().manual_seed(5)
    theta = torch.randn(n, generator=g)
    dropped_at, at_drop = torch.full((n,), -1), torch.zeros(n)
    held: dict[float, set[int]] = {}
    for step in range(budgets.total_steps):
        theta = theta + 0.3 * torch.randn(n, generator=g)  # the parameters keep moving
        theta[dropped_at >= 0] = -10.0
        if budgets.ends_stage(step):
            stage = budgets.stage_at(step)
            fraction = budgets.descending[stage]
            drop_outside_budget(theta, dropped_at, at_drop, fraction, stage)
            held[fraction] = set(torch.nonzero(dropped_at < 0).flatten().tolist())
    importance = nested_importance(theta, dropped_at, at_drop, len(MIB_FRACTIONS))
    order = torch.sort(importance, descending=True, stable=True).indices.tolist()
    for fraction, circuit in held.items():
        assert len(circuit) == int(fraction * n)
        assert set(order[: int(fraction * n)]) == circuit


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"sparsity": {"kind": "lagrangian", "target": -0.1}}, "sparsity target must be >= 0"),
        ({"sparsity": {"kind": "l1"}}, "sparsity kind must be one of"),
        ({"sparsity": {"kind": "relu", "targt": 0.5}}, "unknown setting"),
        ({"target_density": 1.5}, "sparsity target must be >= 0"),
        ({"parameterisation": "gumbel"}, "parameterisation must be one of"),
        ({"budgets": {"fractions": [0.0, 0.5]}}, "must be in (0, 1]"),
        ({"budgets": {"fractions": [0.5, 1.2]}}, "must be in (0, 1]"),
        ({"warm_start": "acdc"}, "warm_start scores must be one of"),
        ({"warm_start": {"scores": "eap", "sparsity": 1.0}}, None),  # refused at warm start
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, message):
    if message is None:
        with pytest.raises(ValueError, match="warm_start sparsity must be in"):
            graph = EdgeGraph(GraphShape(n_layers=1, n_heads=1))
            warm_start_parameters(graph, torch.ones(len(graph.edges)), "sigmoid", sparsity=1.0)
        return
    with pytest.raises(ValueError) as error:
        EdgeCoefficientsModule(FrozenModelSpec(path=str(DEMO_MODEL)), **settings)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_warm_start_sets_the_parameters_from_eap_on_the_training_pairs():
    from circuitforge.edges.evaluation import edge_attribution_scores
    from circuitforge.edges.prepared import PreparedBatch
    from datamodules.prompt_pairs import PromptPairDataModule

    module = EdgeCoefficientsModule(
        FrozenModelSpec(path=str(DEMO_MODEL)),
        parameterisation="hard_concrete",
        warm_start={"scores": "eap", "sparsity": 0.7, "n_batches": 1},
    )
    data = PromptPairDataModule("demo_ioi", n_train=16, n_validation=8, batch_size=8)
    data.bind_model(module.frozen_model)
    module.start_from_scores(data)
    batch = next(iter(data.test_dataloader()))
    prepared = [PreparedBatch(module.masked_forward, batch, "interchange")]
    scores = edge_attribution_scores(module.masked_forward, prepared, "logit_diff")
    expected = warm_start_parameters(module.graph, scores, "hard_concrete", sparsity=0.7)
    assert torch.allclose(module.theta.detach(), expected)
    assert not torch.allclose(module.theta.detach(), param.initial_parameters("hard_concrete", 1))


def test_the_module_ascends_its_lagrange_multipliers():
    module = EdgeCoefficientsModule(
        FrozenModelSpec(path=str(DEMO_MODEL)),
        sparsity={"kind": "lagrangian", "target": 0.9, "lambda_lr": 0.05},
    )
    optimiser = module.configure_optimizers()
    theta_group, lambda_group = optimiser.param_groups
    assert theta_group["params"][0] is module.theta and not theta_group["maximize"]
    assert lambda_group["params"][0] is module.lambdas and lambda_group["maximize"]
    assert lambda_group["lr"] == 0.05
    assert set(module.state_dict()) == {"theta", "lambdas"}

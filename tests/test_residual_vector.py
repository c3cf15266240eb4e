"""The Lightning optimisation: the recipe's steps (itself checked against a plain TransformerLens
loop in tests/test_patchscope_recipe.py), its results files, batches of vectors."""

import json

import pytest
import torch

from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.prompt import locate_placeholder
from circuitforge.patchscope.recipe import Recipe
from lightning_modules.trainer_access import log_dir
from tests.conftest import fit_args
from tests.test_patchscope_recipe import recipe_loop
from train import main


def test_the_lightning_run_is_the_seed_recipe_loop(tmp_path):
    cli = main(fit_args(tmp_path, epochs=2, steps=5))  # demo.yaml: the seed study's recipe
    module = cli.model
    x0 = module.baseline.expand(1, -1).clone()  # init: mean
    norm = float(module.typical_norm)
    history, x_final = recipe_loop(module.frozen_model, Recipe(0.05, "absolute", "none"), x0,
                                   norm, 170, steps=10)  # fmt: skip
    got = [h[0] for h in module.activation_history]
    assert len(got) == 10
    assert got == history  # two epochs of Lightning's loop: the recipe's steps, bit for bit
    assert torch.equal(module.X.detach(), x_final)
    assert history[-1] > history[0]

    results = f"{log_dir(cli.trainer)}/results/"
    opt = json.load(open(results + "optimization.json"))
    assert opt["steps"] == 10 and opt["neuron"] == [170] and opt["source_layer"] == 0
    assert opt["initial_activation"] == pytest.approx([history[0]], rel=1e-4)
    assert opt["activation_history"] == [pytest.approx(history, rel=1e-4, abs=1e-5)]
    assert [h["epoch"] for h in opt["history"]] == [0, 1]
    sae = json.load(open(results + "sae_decomposition.json"))
    assert sae["hook_name"] == "blocks.0.hook_resid_pre"  # the stream X is written to
    assert len(sae["top_features"]) == 1 and len(sae["top_features"][0]) == 10
    gen = json.load(open(results + "patchscope_generation.json"))
    assert gen["target_prompt"] == "A detailed description of a x is that"
    tokenizer = module.frozen_model.tokenizer
    (text,) = gen["contrastive_text"]
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 20


def test_batched_vectors_equal_separate_runs(demo_model):
    prompt = locate_placeholder(demo_model, "<pad> <pad> <pad> x")
    objective = NeuronObjective(demo_model, prompt, 1, 3)
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(4, demo_model.cfg.d_model, generator=g)
    neurons = torch.tensor([7, 7, 100, 511])
    together = objective(xs, neurons)
    apart = torch.cat([objective(xs[i : i + 1], neurons[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, apart, atol=1e-5)
    # and the gradient of the summed loss is each vector's own gradient
    x = xs.clone().requires_grad_(True)
    objective(x, neurons).sum().backward()
    for i in range(4):
        xi = xs[i : i + 1].clone().requires_grad_(True)
        objective(xi, neurons[i : i + 1]).sum().backward()
        assert x.grad is not None and xi.grad is not None
        assert torch.allclose(x.grad[i], xi.grad[0], atol=1e-5)


def test_several_neurons_and_seeds_in_one_run(tmp_path):
    cli = main(
        fit_args(tmp_path, "--model.init_args.neurons=[7,100]", "--model.init_args.seeds=[0,1]",
                 "--model.init_args.init=random", "--model.init_args.norm_constraint=sphere")
    )  # fmt: skip
    module = cli.model
    assert module.X.shape == (4, module.frozen_model.cfg.d_model)
    assert not torch.allclose(module.X[0], module.X[1])  # seeds differ
    norms = module.X.detach().norm(dim=-1)
    assert torch.allclose(norms, module.typical_norm.expand(4), rtol=1e-4)
    opt = json.load(open(log_dir(cli.trainer) / "results" / "optimization.json"))
    assert opt["neuron"] == [7, 7, 100, 100] and len(opt["activation_history"]) == 4

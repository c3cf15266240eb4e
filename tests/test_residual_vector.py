"""The Lightning optimisation against an independent plain-TransformerLens loop."""

import json

import pytest
import torch

from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.prompt import locate_placeholder
from tests.conftest import fit_args
from train import main

PROMPT = "We say that a x"  # configs/patchscope/demo.yaml


def plain_transformer_lens_loop(
    model, x0, source, target, neuron, steps, lr=0.05, loss=lambda a: -a, after_step=None
):
    """The seed notebook's loop: full forward with hooks every step, Adam on an fp32 X.

    `loss` of the activation (default: its negative) and `after_step(x)` (a projection, in
    place) let the recipe tests run their variants through the same loop."""
    tokens = model.to_tokens(PROMPT)
    position = tokens[0].tolist().index(model.to_single_token("x"))
    x = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([x], lr=lr)
    history = []
    for _ in range(steps):
        seen = {}

        def inject(resid, hook):
            resid = resid.clone()
            resid[:, position] = x
            return resid

        def read(post, hook, seen=seen):
            seen["a"] = post[0, position, neuron]

        model.run_with_hooks(
            tokens,
            fwd_hooks=[
                (f"blocks.{source}.hook_resid_pre", inject),
                (f"blocks.{target}.mlp.hook_post", read),
            ],
        )
        history.append(float(seen["a"]))
        opt.zero_grad()
        loss(seen["a"]).backward()
        opt.step()
        if after_step is not None:
            with torch.no_grad():
                after_step(x)
    return history, x.detach()


def test_lightning_run_matches_the_plain_loop(tmp_path):
    cli = main(fit_args(tmp_path, epochs=2, steps=5))
    module = cli.model
    x0 = module.baseline.expand(1, -1).clone()  # init: mean
    history, x_final = plain_transformer_lens_loop(module.frozen_model, x0, 0, 3, 170, steps=10)
    got = [h[0] for h in module.activation_history]
    assert len(got) == 10
    assert got == pytest.approx(history, rel=1e-4, abs=1e-5)
    assert torch.allclose(module.X.detach(), x_final, atol=1e-4)
    assert history[-1] > history[0]

    results = cli.trainer.log_dir + "/results/"
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
    opt = json.load(open(cli.trainer.log_dir + "/results/optimization.json"))
    assert opt["neuron"] == [7, 7, 100, 100] and len(opt["activation_history"]) == 4

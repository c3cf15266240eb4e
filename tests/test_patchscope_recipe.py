"""The real-model recipe: word baseline, steps relative to the norm, ball, stop at a target.

Each piece is checked against an independent computation: plain TransformerLens runs of the
prompt with the word written in, and a plain loop of the seed notebook with the recipe's loss.
"""

from __future__ import annotations

import pytest
import torch

from circuitforge.patchscope.constraints import constrain_norm
from circuitforge.patchscope.objective import neuron_loss
from circuitforge.patchscope.prompt import locate_placeholder
from circuitforge.patchscope.word_residuals import vocabulary_words, word_residuals
from lightning_modules.residual_vector import ResidualVectorModule
from tests.conftest import fit_args
from tests.test_residual_vector import plain_transformer_lens_loop
from train import main

PROMPT = "We say that a x"


def test_word_residuals_equal_plain_runs_of_the_prompt_with_the_word(demo_model):
    prompt = locate_placeholder(demo_model, PROMPT)
    words = vocabulary_words(demo_model, 7)
    table = word_residuals(demo_model, prompt, 2, words, batch_size=3)  # uneven chunks
    for row, word in zip(table, words.tolist()):
        text = demo_model.tokenizer.decode([word]).strip()
        assert text.isalpha() and text.islower() and len(text) >= 3
        tokens = demo_model.to_tokens(PROMPT.replace(" x", " " + text))
        assert tokens.shape == prompt.tokens.shape  # one token, in the placeholder's slot
        _, cache = demo_model.run_with_cache(tokens)
        expected = cache["blocks.2.hook_resid_pre"][0, prompt.position]
        assert torch.allclose(row, expected, atol=1e-5)


def test_vocabulary_words_refuses_more_words_than_there_are(demo_model):
    with pytest.raises(ValueError, match="whole-word tokens"):
        vocabulary_words(demo_model, 10**6)


def test_hinge_stops_pushing_at_the_target():
    a = torch.tensor([0.5, 2.0], requires_grad=True)
    neuron_loss(a, target=1.0).backward()
    assert a.grad.tolist() == [-1.0, 0.0]  # below the target: pushed up; above: left alone
    b = torch.tensor([0.5, 2.0], requires_grad=True)
    neuron_loss(b).backward()
    assert b.grad.tolist() == [-1.0, -1.0]


def test_recipe_run_matches_the_plain_loop(tmp_path):
    target = 60.0
    args = fit_args(
        tmp_path,
        "--model.init_args.baseline=words",
        "--model.init_args.n_words=50",
        "--model.init_args.lr=0.01",
        "--model.init_args.lr_scale=typical_norm",
        "--model.init_args.norm_constraint=ball",
        f"--model.init_args.target_activation={target}",
        epochs=2,
        steps=6,
    )
    module = main(args).model
    model = module.frozen_model
    table = word_residuals(model, locate_placeholder(model, PROMPT), 0, vocabulary_words(model, 50))
    radius = float(table.norm(dim=-1).mean())
    assert torch.allclose(module.baseline, table.mean(0), atol=1e-5)  # start and contrast
    assert float(module.typical_norm) == pytest.approx(radius, rel=1e-5)
    lr = 0.01 * radius / model.cfg.d_model**0.5
    history, x = plain_transformer_lens_loop(
        model,
        table.mean(0)[None],
        0,
        3,
        170,
        steps=12,
        lr=lr,
        loss=lambda a: torch.relu(target - a),
        after_step=lambda x: x.copy_(x * (radius / x.norm()).clamp(max=1.0)),
    )
    got = [h[0] for h in module.activation_history]
    assert got == pytest.approx(history, rel=1e-4, abs=1e-4)
    assert torch.allclose(module.X.detach(), x, atol=1e-3)
    assert float(module.X.norm()) <= radius * (1 + 1e-5)
    assert max(history) >= target  # it got there, and then the hinge held it
    reached = next(i for i, a in enumerate(history) if a >= target)
    assert all(a > 0.8 * target for a in history[reached:])


def test_target_activation_must_be_finite(tmp_path, demo_spec):
    with pytest.raises(ValueError, match="target_activation = nan"):  # refused by the CLI
        main(fit_args(tmp_path, "--model.init_args.target_activation=.nan"))
    with pytest.raises(ValueError, match="target_activation must be a finite number"):
        ResidualVectorModule(demo_spec, 0, 3, [170], target_activation=float("inf"))


def test_constrain_norm_ball_only_shrinks():
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    out = constrain_norm(v, 1.0, "ball")
    assert out.norm(dim=-1).tolist() == pytest.approx([1.0, 0.5])

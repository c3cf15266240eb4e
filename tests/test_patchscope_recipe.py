"""The recipe (`circuitforge.patchscope.recipe`), the one step both the single-neuron run and
the sweep take: the seed study's (lr 0.05, no bound, maximise) and the real-model one (word
baseline, steps relative to the norm, ball, stop at a target).

Each piece is checked against an independent computation: plain TransformerLens runs of the
prompt with the word written in, and a plain loop of the seed notebook (full forward with hooks,
its own Adam, loss and projection written out here).
"""

from __future__ import annotations

import pytest
import torch

from circuitforge.patchscope.constraints import constrain_norm
from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.prompt import locate_placeholder
from circuitforge.patchscope.recipe import Recipe, step
from circuitforge.patchscope.word_residuals import vocabulary_words, word_residuals
from lightning_modules.residual_vector import ResidualVectorModule
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


def recipe_loop(model, recipe, x0, typical_norm, neuron, steps, target=None, source=0, layer=3):
    """`steps` calls of the recipe's `step` on one vector: [activation per step], final X."""
    objective = NeuronObjective(model, locate_placeholder(model, PROMPT), source, layer)
    x = torch.nn.Parameter(x0.clone())
    optimizer = recipe.make_optimizer(x, typical_norm)
    targets = None if target is None else torch.tensor([target])
    history = []
    for i in range(steps):
        done = step(
            recipe, objective, x, optimizer, torch.tensor([neuron]), targets, typical_norm, i
        )
        history.append(float(done.activations[0]))
    return history, x.detach()


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
    Recipe().loss(a, torch.tensor([1.0, 1.0])).backward()
    assert a.grad is not None
    assert a.grad.tolist() == [-1.0, 0.0]  # below the target: pushed up; above: left alone
    b = torch.tensor([0.5, 2.0], requires_grad=True)
    Recipe().loss(b, None).backward()
    assert b.grad is not None
    assert b.grad.tolist() == [-1.0, -1.0]


@pytest.mark.parametrize(
    "recipe, target",
    [
        (Recipe(0.05, "absolute", "none"), None),  # the seed study's
        (Recipe(0.01, "typical_norm", "ball"), 60.0),  # the real-model one: the hinge holds
        (Recipe(0.3, "typical_norm", "ball"), None),  # unbounded push: the ball holds
    ],
    ids=["seed_study", "hinge", "ball"],
)
def test_the_recipe_step_matches_the_plain_loop(demo_model, recipe, target):
    """From the word baseline of neuron 3/170's prompt, 12 steps each."""
    model = demo_model
    table = word_residuals(model, locate_placeholder(model, PROMPT), 0, vocabulary_words(model, 50))
    radius, x0 = float(table.norm(dim=-1).mean()), table.mean(0)[None]
    got, x = recipe_loop(model, recipe, x0, radius, 170, steps=12, target=target)
    scaled = recipe.lr_scale == "typical_norm"
    expected, x_plain = plain_transformer_lens_loop(
        model,
        x0,
        0,
        3,
        170,
        steps=12,
        lr=recipe.lr * radius / model.cfg.d_model**0.5 if scaled else recipe.lr,
        loss=(lambda a: -a) if target is None else (lambda a: torch.relu(target - a)),
        after_step=(
            (lambda x: x.copy_(x * (radius / x.norm()).clamp(max=1.0)))
            if recipe.norm_constraint == "ball"
            else None
        ),
    )
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert torch.allclose(x, x_plain, atol=1e-4)
    assert expected[-1] > 5 * expected[0]
    if target is not None:
        assert max(expected) >= target  # it got there, and then the hinge held it
        reached = next(i for i, a in enumerate(expected) if a >= target)
        assert all(a > 0.8 * target for a in expected[reached:])
    if recipe.norm_constraint == "ball":
        assert float(x.norm()) <= radius * (1 + 1e-5)
    if target is None and recipe.norm_constraint == "ball":
        assert float(x_plain.norm()) == pytest.approx(radius, rel=1e-5)  # it binds


def test_the_module_takes_the_recipe_steps_from_the_word_baseline(tmp_path):
    """ResidualVectorModule (Lightning's loop, two epochs) is the recipe's loop bit for bit,
    started from the mean word with the mean word's typical norm."""
    target = 60.0
    args = fit_args(
        tmp_path,
        "--model.init_args.baseline=null",  # demo.yaml's corpus baseline replaced by
        '--model.init_args.baseline={"words": 50}',
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
    recipe = Recipe(0.01, "typical_norm", "ball")
    x0 = module.baseline[None].clone()
    history, x = recipe_loop(model, recipe, x0, float(module.typical_norm), 170, 12, target)
    assert [h[0] for h in module.activation_history] == history
    assert torch.equal(module.X.detach(), x)


def test_target_activation_must_be_finite(tmp_path, demo_spec):
    with pytest.raises(ValueError, match="target_activation = nan"):  # refused by the CLI
        main(fit_args(tmp_path, "--model.init_args.target_activation=.nan"))
    with pytest.raises(ValueError, match="target_activation must be a finite number"):
        ResidualVectorModule(demo_spec, 0, 3, [170], target_activation=float("inf"))


def test_a_bad_recipe_is_refused_by_name():
    with pytest.raises(ValueError, match="lr must be a positive finite number, got -1"):
        Recipe(lr=-1.0)
    with pytest.raises(ValueError, match="norm_constraint must be one of"):
        Recipe(norm_constraint="cube")  # type: ignore[arg-type]


def test_constrain_norm_ball_only_shrinks():
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    out = constrain_norm(v, 1.0, "ball")
    assert out.norm(dim=-1).tolist() == pytest.approx([1.0, 0.5])


# --- the recipe's options (issue 26): each against a plain hooked forward written out here ----
def plain_layer(model, prompt, x, source=0, layer=3):
    """Every neuron of blocks.{layer}.mlp.hook_post at the placeholder, x[b] written into
    blocks.{source}.hook_resid_pre there: one plain TransformerLens run per row."""
    tokens = model.to_tokens(prompt)
    position = tokens[0].tolist().index(model.to_single_token("x"))
    rows = []
    for row in x:
        seen = {}

        def inject(resid, hook, row=row):
            resid = resid.clone()
            resid[:, position] = row
            return resid

        def read(post, hook, seen=seen):
            seen["post"] = post[0, position].float()

        model.run_with_hooks(
            tokens,
            fwd_hooks=[
                (f"blocks.{source}.hook_resid_pre", inject),
                (f"blocks.{layer}.mlp.hook_post", read),
            ],
        )
        rows.append(seen["post"])
    return torch.stack(rows)


def start_vectors(model, n=3, seed=0):
    table = word_residuals(model, locate_placeholder(model, PROMPT), 0, vocabulary_words(model, 50))
    radius = float(table.norm(dim=-1).mean())
    g = torch.Generator().manual_seed(seed)
    return table.mean(0) + 0.3 * radius * torch.randn(n, table.shape[1], generator=g) / table.shape[
        1
    ] ** 0.5, radius


def test_sphere_holds_every_norm_at_the_typical_norm_after_each_step(demo_model):
    x0, radius = start_vectors(demo_model)
    recipe = Recipe(0.05, "typical_norm", "sphere")
    objective = NeuronObjective(demo_model, locate_placeholder(demo_model, PROMPT), 0, 3)
    x = torch.nn.Parameter(x0.clone())
    optimizer = recipe.make_optimizer(x, radius)
    for i in range(5):
        step(recipe, objective, x, optimizer, torch.tensor([170, 5, 9]), None, radius, i)
        norms = torch.linalg.vector_norm(x.detach().double(), dim=-1)
        assert norms.tolist() == pytest.approx([radius] * 3, rel=1e-5)


def test_the_specificity_term_is_the_brute_force_sum_over_the_other_neurons(demo_model):
    x0, _ = start_vectors(demo_model)
    neurons = [170, 5, 9]
    d_mlp = demo_model.cfg.d_mlp
    maxima = torch.rand(d_mlp, generator=torch.Generator().manual_seed(1)) + 0.5
    maxima[7] = 0.0  # a neuron that never fired is left out
    objective = NeuronObjective(demo_model, locate_placeholder(demo_model, PROMPT), 0, 3)
    got = Recipe(specificity=0.7).specificity_loss(
        objective.layer_activations(x0), torch.tensor(neurons), maxima
    )
    layer = plain_layer(demo_model, PROMPT, x0)
    expected = 0.0
    for b, n in enumerate(neurons):
        others = [j for j in range(d_mlp) if j != n and maxima[j] > 0]
        expected += sum(max(float(layer[b, j]), 0.0) / float(maxima[j]) for j in others) / len(
            others
        )
    assert float(got) == pytest.approx(0.7 * expected, rel=1e-4)


def test_the_specificity_step_lowers_the_other_neurons_it_drives(demo_model):
    """Its gradient acts: with the term, the other neurons end lower than without it."""
    x0, radius = start_vectors(demo_model, n=1)
    maxima = torch.ones(demo_model.cfg.d_mlp)
    objective = NeuronObjective(demo_model, locate_placeholder(demo_model, PROMPT), 0, 3)
    others = {}
    for weight in (0.0, 50.0):
        recipe = Recipe(0.01, "typical_norm", "ball", specificity=weight)
        x = torch.nn.Parameter(x0.clone())
        optimizer = recipe.make_optimizer(x, radius)
        for i in range(8):
            step(
                recipe,
                objective,
                x,
                optimizer,
                torch.tensor([170]),
                None,
                radius,
                i,
                other_maxima=maxima,
            )
        layer = plain_layer(demo_model, PROMPT, x.detach())[0]
        others[weight] = float(torch.relu(torch.cat([layer[:170], layer[171:]])).mean())
    assert others[50.0] < others[0.0]


def test_the_anchor_term_is_the_squared_distance_over_the_typical_norm(demo_model):
    x0, radius = start_vectors(demo_model)
    anchor = x0.flip(0)
    got = Recipe(anchor=0.3).anchor_loss(x0, anchor, radius)
    expected = 0.3 * sum(
        float(((a - b) ** 2).sum()) / radius**2 for a, b in zip(x0.double(), anchor.double())
    )
    assert float(got) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="anchor_to"):
        recipe = Recipe(anchor=0.3)
        objective = NeuronObjective(demo_model, locate_placeholder(demo_model, PROMPT), 0, 3)
        x = torch.nn.Parameter(x0.clone())
        step(
            recipe,
            objective,
            x,
            recipe.make_optimizer(x, radius),
            torch.tensor([1, 2, 3]),
            None,
            radius,
        )


def test_carrier_prompts_average_the_neuron_over_plain_runs_of_each_prompt(demo_model):
    from circuitforge.patchscope.objective import neuron_objective

    x0, _ = start_vectors(demo_model)
    prompts = [PROMPT, "A detailed description of a x is that"]
    objective = neuron_objective(
        demo_model, [locate_placeholder(demo_model, p) for p in prompts], 0, 3
    )
    neurons = torch.tensor([170, 5, 9])
    got = objective(x0, neurons)
    expected = torch.stack(
        [plain_layer(demo_model, p, x0)[torch.arange(3), neurons] for p in prompts]
    ).mean(0)
    assert torch.allclose(got, expected, atol=1e-5)


def test_the_scale_rule_takes_the_smallest_scale_that_reaches_the_target_else_the_largest():
    from circuitforge.patchscope.scales import check_scales, pick_scales

    scales = [0.5, 1.0, 2.0]
    activations = torch.tensor([[0.1, 3.0, 0.2], [1.2, 2.0, 0.9], [2.0, 1.0, 0.3]])  # [scale, row]
    targets = torch.tensor([1.0, 1.0, 1.0])
    expected = []
    for row in range(3):  # the rule, written out
        reached = [s for k, s in enumerate(scales) if activations[k, row] >= targets[row]]
        best = max(range(3), key=lambda k: float(activations[k, row]))
        expected.append(reached[0] if reached else scales[best])
    assert pick_scales(activations, targets, scales).tolist() == expected == [1.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="injection_scales"):
        check_scales([1.0, -2.0])

"""The neuron-explanation sweep (the causal atlas) against independent computations: the batched
optimisation against one-neuron runs, the sweep against the single-neuron ResidualVectorModule,
the scores against plain TransformerLens forwards, an interrupted sweep against an
uninterrupted one (nothing redone), and two ddp processes against one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from circuitforge.explanations.atlas_view import context_residuals, read_atlas
from circuitforge.explanations.optimise import ChunkState, initial_rows, optimise_chunk
from circuitforge.explanations.scores import other_neuron, text_maxima
from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.prompt import locate_placeholder
from circuitforge.patchscope.recipe import Recipe
from lightning_modules.neuron_explanations import NeuronExplanationModule
from tests.conftest import DEMO_CONFIG, ROOT
from tests.explanation_runs import results, sweep_args
from train import main


def test_every_neuron_gets_a_row_with_both_views(sweep):
    cli, out = sweep
    assert [r["neuron"] for r in out["rows"]] == list(range(6))
    for row in out["rows"]:
        assert row["seeds"] == [0, 1] and len(row["contrastive_text"]) == 2
        assert len(row["top_contexts"]) == 10 and "[[" in row["top_contexts"][0]["context"]
        assert len(row["activation_history"]) == 6
    assert out["summary"]["n_neurons"] == 6 and len(out["summary"]["agree"]) == 6


def test_a_batch_of_neurons_equals_each_neuron_alone(demo_model):
    prompt = locate_placeholder(demo_model, "We say that a x", "x")
    objective = NeuronObjective(demo_model, prompt, 0, 3)
    baseline = torch.randn(demo_model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    norm = float(baseline.norm())
    neurons, seeds = [5, 17, 17, 40], [0, 0, 1, 0]
    targets = torch.tensor([3.0, 2.0, 2.0, 5.0])

    def run(rows: list[int]) -> torch.Tensor:
        x = torch.cat([initial_rows(baseline, norm, [seeds[i]], 0.2) for i in rows])
        state = ChunkState([neurons[i] for i in rows], [seeds[i] for i in rows], 0, x, {}, [])
        return optimise_chunk(objective, state, 8, Recipe(0.01), norm, targets[rows]).x

    together = run([0, 1, 2, 3])
    alone = torch.cat([run([i]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[1], together[2])  # seed 1 starts elsewhere


def test_a_row_frozen_at_its_target_keeps_the_vector_that_first_reached_it(demo_model):
    """Rows are independent, so a frozen run's row follows the unfrozen run's trajectory until
    its activation (read before a step) first reaches its target, and stays at that vector."""
    prompt = locate_placeholder(demo_model, "We say that a x", "x")
    objective = NeuronObjective(demo_model, prompt, 0, 3)
    baseline = torch.randn(demo_model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    norm = float(baseline.norm())
    neurons = [5, 17, 40, 3]
    targets = torch.tensor([0.3, 0.2, 0.35, 500.0])  # the last is never reached
    start = initial_rows(baseline, norm, [0], 0.2).repeat(4, 1)
    trajectory = [start]
    free = optimise_chunk(
        objective, ChunkState(neurons, [0] * 4, 0, start, {}, []), 12, Recipe(0.02), norm,
        targets, on_step=lambda s: trajectory.append(s.x),
    )  # fmt: skip
    frozen = optimise_chunk(
        objective, ChunkState(neurons, [0] * 4, 0, start, {}, []), 12, Recipe(0.02), norm,
        targets, freeze_at_target=True,
    )  # fmt: skip
    history = torch.tensor(free.history)  # [step, row], each before its step
    reached = history >= targets
    assert reached[:, :3].any(0).all() and not reached[:, 3].any()
    for row in range(4):
        k = int(reached[:, row].float().argmax()) if reached[:, row].any() else len(trajectory) - 1
        torch.testing.assert_close(frozen.x[row], trajectory[k][row], rtol=1e-4, atol=1e-3)
    assert frozen.frozen == [True, True, True, False]


def test_the_split_is_fixed_disjoint_and_whole():
    from circuitforge.explanations.split import development_neurons, held_out_neurons

    dev, held = development_neurons(), held_out_neurons()
    assert len(dev) == 256 and len(held) == 1792 and sorted(dev + held) == list(range(2048))
    order = torch.randperm(2048, generator=torch.Generator().manual_seed(0))
    assert dev == sorted(order[:256].tolist())  # seed 0 over range(2048), the first 256
    assert dev != development_neurons(seed=1)


class RecordingExplanations(NeuronExplanationModule):
    """The sweep, keeping its chunk's state after every step."""

    def _save_step(self, state) -> None:
        super()._save_step(state)
        self.recorded = state


def test_the_sweep_and_the_single_run_give_the_same_vector(demo_atlas_path, tmp_path):
    """Neuron 2, seed 0: the layer sweep (predict, NeuronExplanationModule) and the
    single-neuron run (fit, ResidualVectorModule with the sweep's recipe written out in its own
    settings) end at the same X, bit for bit, through the same steps (the sweep's reference
    path: the whole prompt at every step, as the single run takes it; `cached_prefix` agrees
    with it up to rounding, tests/test_sweep_speed.py)."""
    view = read_atlas(demo_atlas_path, 3, 512)
    target = view.natural_max(2)
    swept = main(
        sweep_args(
            tmp_path / "sweep",
            demo_atlas_path,
            "--model.class_path=tests.test_neuron_explanations.RecordingExplanations",
            "--data.init_args.neurons=[2]",
            "--model.init_args.seeds=[0]",
            "--model.init_args.cached_prefix=false",
        )
    ).model
    single = main(
        [
            "fit",
            "--config",
            str(DEMO_CONFIG),
            f"--trainer.logger.init_args.save_dir={tmp_path / 'single'}",
            "--model.init_args.neurons=[2]",
            "--model.init_args.baseline=null",  # demo.yaml's corpus baseline replaced by
            '--model.init_args.baseline={"words": 100}',  # tests/explanation_runs.py's
            "--model.init_args.lr=0.003",
            "--model.init_args.lr_scale=typical_norm",
            "--model.init_args.norm_constraint=ball",
            f"--model.init_args.target_activation={target}",
            "--trainer.max_epochs=1",
            "--model.init_args.steps_per_epoch=6",  # the sweep's steps
            "--trainer.callbacks=[]",
            "--trainer.enable_progress_bar=false",
        ]
    ).model
    assert swept.recorded.step == 6
    assert torch.equal(swept.baseline, single.baseline)
    assert torch.equal(swept.recorded.x, single.X.detach())
    (row,) = swept.rows.values()
    assert row["activation_history"] == single.activation_history
    assert row["final_activation"] == single.current_activations()


def test_text_maxima_equal_a_plain_forward_per_text(demo_model):
    texts = ["the lion lives in a pride.", "A square has four sides", "water"]
    ours = text_maxima(demo_model, texts, 3, batch_size=2)
    for i, text in enumerate(texts):
        tokens = demo_model.to_tokens(text, prepend_bos=True)
        _, cache = demo_model.run_with_cache(tokens, names_filter="blocks.3.mlp.hook_post")
        plain = cache["blocks.3.mlp.hook_post"][0, 1:].max(0).values
        torch.testing.assert_close(ours[i], plain, rtol=1e-4, atol=1e-5)


def test_context_residuals_equal_vector_x_of_each_context(demo_model, demo_atlas_path):
    from circuitforge.atlas.vector_x import read_atlas_entry, reload_document, vector_x

    view = read_atlas(demo_atlas_path, 3, demo_model.cfg.d_mlp)
    ours = context_residuals(demo_model, view, [7, 300], "blocks.0.hook_resid_pre")
    for neuron in (7, 300):
        for rank in (0, 4):
            entry = read_atlas_entry(demo_atlas_path, neuron, rank)
            ids = reload_document(demo_model, entry)
            x, _ = vector_x(demo_model, ids, 0, entry.token_position, 3, neuron)
            torch.testing.assert_close(ours[neuron][rank], x, rtol=1e-4, atol=1e-5)


def test_the_random_neuron_is_another_and_fixed():
    picks = [other_neuron(n, 512) for n in range(512)]
    assert all(p != n and 0 <= p < 512 for n, p in enumerate(picks))
    assert picks == [other_neuron(n, 512) for n in range(512)] and len(set(picks)) > 200


def test_generation_scores_are_the_neurons_own_maxima_on_the_decoded_texts(sweep, demo_model):
    cli, out = sweep
    view = read_atlas(cli.model.atlas_path, 3, 512)
    for row in out["rows"][:3]:
        n, other = row["neuron"], row["random_neuron"]
        for text, score, control in [
            ("contrastive_text", "generation_score", "generation_baseline"),
            ("plain_text", "generation_score_plain", "generation_baseline_plain"),
        ]:  # each text's random-neuron control is read on that same text
            tokens = demo_model.to_tokens(row[text][0], prepend_bos=True)
            _, cache = demo_model.run_with_cache(tokens, names_filter="blocks.3.mlp.hook_post")
            post = cache["blocks.3.mlp.hook_post"][0, 1:].max(0).values
            assert row[score] == pytest.approx(float(post[n]) / view.natural_max(n), 1e-3)
            assert row[control] == pytest.approx(float(post[other]) / view.natural_max(other), 1e-3)
        x_top = [f["feature"] for f in row["x_features"][0]]
        c_top = [f["feature"] for f in row["context_features"]]
        assert row["agreement"] == len(set(x_top) & set(c_top)) / 10


class CrashingExplanations(NeuronExplanationModule):
    """Stands for a killed sweep: raises after the snapshot of the `crash_at`-th step; counts
    the optimisation steps it does."""

    def __init__(self, *args, crash_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.crash_at, self.steps_done = crash_at, 0

    def _save_step(self, state) -> None:
        super()._save_step(state)
        self.steps_done += 1
        if self.steps_done == self.crash_at:
            raise RuntimeError("interrupted")


def test_ckpt_path_last_resumes_an_interrupted_sweep_with_nothing_redone(
    sweep, demo_atlas_path, tmp_path
):
    _, uninterrupted = sweep
    crashing = [  # the resumed run has the same command line: it does 3 steps, never 9
        "--model.class_path=tests.test_neuron_explanations.CrashingExplanations",
        "--model.init_args.crash_at=9",
    ]
    with pytest.raises(RuntimeError, match="interrupted"):  # in chunk 2 (after 6 + 3 steps)
        main(sweep_args(tmp_path, demo_atlas_path, *crashing))
    (interrupted,) = tmp_path.glob("*/version_*")
    assert not (interrupted / "results").exists()
    with pytest.raises(ValueError) as refused:
        main(sweep_args(tmp_path, demo_atlas_path, *crashing, "--model.init_args.steps=7",
                        "--ckpt_path=last"))  # fmt: skip
    assert "model.init_args.steps: snapshot 6, command line 7" in str(refused.value)
    cli = main(sweep_args(tmp_path, demo_atlas_path, *crashing, "--ckpt_path=last"))
    assert cli.trainer.log_dir == str(interrupted)  # the same version folder
    assert cli.model.steps_done == 3  # chunk 2's last 3 steps; chunk 1 was done
    assert results(tmp_path)["rows"] == uninterrupted["rows"]


def test_the_removed_resume_from_flag_is_refused_naming_ckpt_path_last(demo_atlas_path, tmp_path):
    with pytest.raises(ValueError, match=r"^resume_from is gone: .*--ckpt_path last"):
        main(sweep_args(tmp_path, demo_atlas_path, f"--model.init_args.resume_from={tmp_path}"))


def test_two_ddp_processes_give_the_same_rows(sweep, demo_atlas_path, tmp_path):
    _, one = sweep
    args = sweep_args(tmp_path, demo_atlas_path, "--trainer.strategy=ddp", "--trainer.devices=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    two = results(tmp_path)
    assert two["processes"] == 2
    for a, b in zip(one["rows"], two["rows"], strict=True):
        assert a["neuron"] == b["neuron"] and a["contrastive_text"] == b["contrastive_text"]
        assert a["agreement"] == b["agreement"]
        assert a["final_activation"] == pytest.approx(b["final_activation"], abs=1e-4)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data.init_args.stop=9999"], "out of range: the MLP has 512 neurons"),
        (["--data.init_args.neurons=[3, 600]"], r"neuron\(s\) \[600\] out of range"),
        (["--model.init_args.target_layer=2"], "profiles 'blocks.3.mlp.hook_post', not"),
        (["--model.init_args.seeds=[1, 1]"], "each once"),
        (["--trainer.inference_mode=true"], "set trainer.inference_mode: false"),
        (["--model.init_args.prompt=no placeholder here"], "placeholder"),
        (["--model.init_args.sae.path=assets/demo/saes/layer_2"], "blocks.0.hook_resid_pre"),
    ],
)
def test_bad_sweep_arguments_are_refused(demo_atlas_path, tmp_path, extra, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        main(sweep_args(tmp_path, demo_atlas_path, *extra))


def test_a_missing_atlas_names_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="build it first"):
        main(sweep_args(tmp_path, tmp_path / "atlas.json"))


@pytest.mark.slow
def test_every_recipe_option_runs_through_the_sweep_under_bf16(demo_atlas_path, tmp_path):
    """All of issue 26's recipe options at once, under Lightning's bf16 autocast: a row per
    neuron, each decoded at one of the injection scales."""
    main(
        sweep_args(
            tmp_path,
            demo_atlas_path,
            "--trainer.precision=bf16-mixed",
            "--model.init_args.freeze_at_target=true",
            "--model.init_args.injection_scales=[1.0,2.0]",
            "--model.init_args.init=contexts",
            "--model.init_args.anchor=0.5",
            "--model.init_args.specificity=0.5",
            "--model.init_args.norm_constraint=sphere",
            '--model.init_args.carrier_prompts=["A detailed description of a x is that"]',
        )
    )
    rows = results(tmp_path)["rows"]
    assert [r["neuron"] for r in rows] == list(range(6))
    assert all(set(r["injection_scale"]) <= {1.0, 2.0} for r in rows)

"""`--ckpt_path` never runs another experiment than the command line's: it resumes the run with
the same settings, refuses a difference with both values named, and takes the newest checkpoint
that is whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lightning_modules.trainer_access import log_dir
from tests.conftest import ROOT, fit_args
from tests.test_resume import crash_at
from train import main

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def checkpoints(cli) -> Path:
    return log_dir(cli.trainer) / "checkpoints"


def test_a_checkpoint_file_never_overrides_the_command_line(tmp_path):
    first = main(fit_args(tmp_path, epochs=1, steps=2))
    last = checkpoints(first) / "last.ckpt"
    changed = ["--model.init_args.neurons=[171]", "--model.init_args.lr=0.01"]
    with pytest.raises(ValueError) as refused:
        main(fit_args(tmp_path, f"--ckpt_path={last}", *changed, epochs=2, steps=2))
    message = str(refused.value)
    assert "model.init_args.lr: checkpoint 0.05, command line 0.01" in message
    assert "model.init_args.neurons: checkpoint [170], command line [171]" in message

    # the same settings resume it: 2 epochs from the file = 2 epochs straight
    straight = main(fit_args(tmp_path / "straight", epochs=2, steps=2)).model
    resumed = main(fit_args(tmp_path, f"--ckpt_path={last}", epochs=2, steps=2))
    assert resumed.trainer.global_step == 4 and torch.equal(resumed.model.X, straight.X)


def test_a_checkpoint_of_another_kind_of_run_is_refused_by_name(tmp_path):
    edge = main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/edges/tracr_hist.yaml"),
            f"--trainer.logger.init_args.save_dir={tmp_path / 'edges'}",
            "--trainer.max_epochs=1",
            "--data.init_args.n_train=32",
            "--data.init_args.n_validation=16",
            *QUIET,
        ]
    )
    with pytest.raises(ValueError, match="model.class_path: checkpoint 'lightning_modules.Edge"):
        main(fit_args(tmp_path, f"--ckpt_path={checkpoints(edge) / 'last.ckpt'}"))


def test_last_resumes_only_a_run_with_these_settings(tmp_path):
    done = main(fit_args(tmp_path, epochs=2, steps=2))  # version_0: lr 0.05, finished
    results = log_dir(done.trainer) / "results" / "optimization.json"
    before = results.read_bytes()
    new = [crash_at(0, tmp_path / "crashed"), "--model.init_args.lr=0.01"]
    with pytest.raises(RuntimeError, match="interrupted"):  # version_1: lr 0.01, no checkpoint
        main(fit_args(tmp_path, *new, epochs=8, steps=2))
    with pytest.raises(ValueError) as refused:
        main(fit_args(tmp_path, *new, "--ckpt_path=last", epochs=8, steps=2))
    message = str(refused.value)
    assert "version_1: no checkpoint" in message
    assert "model.init_args.lr: checkpoint 0.05, command line 0.01" in message
    assert results.read_bytes() == before  # the finished run is untouched

    extended = main(fit_args(tmp_path, "--ckpt_path=last", epochs=3, steps=2))
    assert extended.trainer.log_dir == done.trainer.log_dir and extended.trainer.global_step == 6


def test_last_falls_back_to_the_epoch_checkpoint_and_says_so(tmp_path, capsys):
    straight = main(fit_args(tmp_path / "a", epochs=3, steps=2)).model
    first = main(fit_args(tmp_path / "b", epochs=2, steps=2))
    (checkpoints(first) / "last.ckpt").unlink()
    resumed = main(fit_args(tmp_path / "b", "--ckpt_path=last", epochs=3, steps=2))
    said = capsys.readouterr().err
    assert "has no intact last.ckpt; resuming from epoch=1-step=4.ckpt" in said
    assert torch.equal(resumed.model.X, straight.X)
    assert resumed.model.activation_history == straight.activation_history
    # the epoch checkpoint it resumed from is not left beside the newer one
    assert sorted(p.name for p in checkpoints(first).iterdir()) == [
        "epoch=2-step=6.ckpt",
        "last.ckpt",
    ]


def test_a_damaged_last_checkpoint_is_skipped_and_named(tmp_path, capsys):
    straight = main(fit_args(tmp_path / "a", epochs=3, steps=2)).model
    first = main(fit_args(tmp_path / "b", epochs=2, steps=2))
    last = checkpoints(first) / "last.ckpt"
    last.write_bytes(last.read_bytes()[:4096])  # what a full disk left
    resumed = main(fit_args(tmp_path / "b", "--ckpt_path=last", epochs=3, steps=2))
    said = capsys.readouterr().err
    assert "skipped" in said and "last.ckpt (4096 bytes) is not a readable checkpoint" in said
    assert torch.equal(resumed.model.X, straight.X)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled object"])
def test_a_damaged_checkpoint_file_gets_a_plain_message(tmp_path, damage):
    first = main(fit_args(tmp_path, epochs=1, steps=2))
    last = checkpoints(first) / "last.ckpt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:4096])
    elif damage == "garbage":
        last.write_bytes(b"not a checkpoint at all\n" * 100)
    else:
        torch.save({"state_dict": {}, "callback": Path("x")}, last)  # not plain values
    with pytest.raises(ValueError) as refused:
        main(fit_args(tmp_path, f"--ckpt_path={last}", epochs=2, steps=2))
    message = str(refused.value)
    assert "last.ckpt" in message and "not a readable checkpoint" in message
    assert "epoch=0-step=2.ckpt is intact" in message
    assert "weights_only" not in message and "weights_only" not in repr(refused.value.__cause__)


def test_the_settings_in_a_checkpoint_are_the_parsed_config(tmp_path):
    """What --ckpt_path compares is stored in the checkpoint, as plain values."""
    cli = main(fit_args(tmp_path, epochs=1, steps=2))
    saved = torch.load(checkpoints(cli) / "last.ckpt", weights_only=True)["circuitforge_config"]
    settings = saved["settings"]
    config = json.loads(json.dumps(cli.config["fit"].as_dict(), default=str))
    assert settings["model.init_args.lr"] == config["model"]["init_args"]["lr"] == 0.05
    assert settings["model.init_args.steps_per_epoch"] == 2
    assert "trainer.max_epochs" not in settings and not any(k.startswith("data.") for k in settings)
    alpha = [k for k in settings if k.endswith("init_args.alpha")]
    assert len(alpha) == 1 and settings[alpha[0]] == 1.5  # callbacks' settings are compared


def test_the_model_weights_are_part_of_what_a_run_is(tmp_path):
    """A model directory under the same path with other weights is another experiment: the
    settings name the path, the weights digest says what was in it."""
    from safetensors.torch import load_file, save_file

    from circuitforge.manifest import write_manifest

    model_dir = tmp_path / "model"
    shutil.copytree(ROOT / "assets" / "demo" / "model", model_dir)
    first = main(fit_args(tmp_path, f"--model.init_args.model.path={model_dir}", steps=2))
    saved = torch.load(checkpoints(first) / "last.ckpt", weights_only=True)["circuitforge_config"]
    before = saved["settings"]["model.weights"]
    assert before == first.model.spec.identity()

    weights = load_file(str(model_dir / "model.safetensors"))
    weights["embed.W_E"] = weights["embed.W_E"] + 1e-3  # fine-tuned, saved in place
    save_file(weights, str(model_dir / "model.safetensors"))
    write_manifest(model_dir)
    resume = [f"--model.init_args.model.path={model_dir}", "--ckpt_path=last"]
    with pytest.raises(ValueError, match=f"model.weights: checkpoint '{before}', command line '"):
        main(fit_args(tmp_path, *resume, epochs=2, steps=2))

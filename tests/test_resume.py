"""A run stopped after any epoch and resumed with --ckpt_path last ends where an uninterrupted
run ends, writing into the same version folder."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_modules.trainer_access import log_dir
from tests.conftest import fit_args
from train import main


def test_resume_equals_uninterrupted(tmp_path):
    straight = main(fit_args(tmp_path / "a", epochs=3, steps=4)).model
    first = main(fit_args(tmp_path / "b", epochs=1, steps=4))
    assert len(first.model.activation_history) == 4
    ckpt = torch.load(log_dir(first.trainer) / "checkpoints" / "last.ckpt", weights_only=True)
    assert set(ckpt["state_dict"]) == {"X", "baseline", "typical_norm"}  # no frozen weights
    # (the baseline is recomputed at set-up, then the checkpoint's buffers replace it)
    resumed = main(fit_args(tmp_path / "b", "--ckpt_path=last", epochs=3, steps=4))
    assert resumed.trainer.log_dir == first.trainer.log_dir  # same version folder
    assert torch.equal(resumed.model.X, straight.X)
    assert resumed.model.activation_history == straight.activation_history
    opt = json.load(open(log_dir(resumed.trainer) / "results" / "optimization.json"))
    assert opt["steps"] == 12 and [h["epoch"] for h in opt["history"]] == [0, 1, 2]
    sae = json.load(open(log_dir(resumed.trainer) / "results" / "sae_decomposition.json"))
    assert len(sae["history"]) == 3


class CrashAtEpoch(L.Callback):
    """Stands for a killed run: raises when the given epoch starts, once (it leaves `marker`),
    so the resumed run can be given the same callbacks, as a resume must."""

    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, Path(marker)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("interrupted")


def crash_at(epoch: int, marker: Path) -> str:
    init = {"epoch": epoch, "marker": str(marker)}
    callback = {"class_path": "tests.test_resume.CrashAtEpoch", "init_args": init}
    return f"--trainer.callbacks+={json.dumps(callback)}"


def test_run_interrupted_mid_way_resumes_from_its_last_epoch(tmp_path):
    straight = main(fit_args(tmp_path / "a", epochs=3, steps=4)).model
    crash = crash_at(2, tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="interrupted"):
        main(fit_args(tmp_path / "b", crash, epochs=3, steps=4))
    resumed = main(fit_args(tmp_path / "b", crash, "--ckpt_path=last", epochs=3, steps=4))
    assert resumed.trainer.global_step == 12
    assert torch.equal(resumed.model.X, straight.X)
    assert resumed.model.activation_history == straight.activation_history


def test_checkpoint_of_another_experiment_is_refused(tmp_path):
    main(fit_args(tmp_path, epochs=1, steps=2))
    with pytest.raises(ValueError, match="experiment settings(.|\n)*neurons"):
        main(fit_args(tmp_path, "--ckpt_path=last", "--model.init_args.neurons=[8]", epochs=2))


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .*last.ckpt"):
        main(fit_args(tmp_path, "--ckpt_path=last"))

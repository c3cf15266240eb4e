"""Checkpoints, snapshots and results are whole or absent, whatever stops the writer: a real
`kill -9` in the middle of a write, a full filesystem; and nothing half-written stays behind."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch

from circuitforge.atomic_files import write_text_atomically
from circuitforge.checkpoints import read_checkpoint
from lightning_modules.trainer_access import log_dir
from tests.conftest import atlas_args, fit_args, results_of
from tests.killing import kill_during_write
from train import main


def only_whole_files(folder: Path) -> list[str]:
    """The names in `folder`; every checkpoint must read and every JSON parse."""
    for path in folder.iterdir():
        if path.suffix == ".ckpt":
            read_checkpoint(path)
        if path.suffix == ".json":
            json.loads(path.read_text())
    return sorted(p.name for p in folder.iterdir())


def test_kill_9_during_a_checkpoint_write_loses_nothing(tmp_path):
    straight = main(fit_args(tmp_path / "a", epochs=3, steps=2)).model
    args = fit_args(tmp_path / "b", epochs=3, steps=2)
    kill_during_write(args, "epoch=1-step=4", tmp_path / "writing")
    (folder,) = (tmp_path / "b" / "runs" / "patchscope_demo").glob("version_*/checkpoints")
    assert "last.ckpt" in only_whole_files(folder)
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == 2  # epoch 0, whole
    resumed = main(fit_args(tmp_path / "b", "--ckpt_path=last", epochs=3, steps=2))
    assert torch.equal(resumed.model.X, straight.X)
    assert resumed.model.activation_history == straight.activation_history
    run = log_dir(resumed.trainer)
    assert only_whole_files(run / "checkpoints") == ["epoch=2-step=6.ckpt", "last.ckpt"]
    assert not [p for p in run.rglob("*") if "tmp" in p.name]  # no half-written file stays


def test_kill_9_during_a_snapshot_write_leaves_no_temporary_file(tmp_path):
    snapshots = "--model.init_args.snapshot_every_n_batches=2"
    args = atlas_args(tmp_path / "a", snapshots, "--trainer.enable_model_summary=false")
    kill_during_write(args, "rank_0.pt", tmp_path / "writing", fraction=0.0, skip=1)
    (interrupted,) = (tmp_path / "a").glob("*/version_*")
    main(atlas_args(tmp_path / "a", snapshots, "--ckpt_path=last"))
    main(atlas_args(tmp_path / "c"))  # uninterrupted
    resumed, straight = (json.loads(results_of(tmp_path / d).read_text()) for d in "ac")
    assert resumed["neurons"] == straight["neurons"]
    assert not [p for p in (interrupted / "atlas_snapshot").iterdir() if "tmp" in p.name]


class FillDisk(L.Callback):
    """Fills the filesystem of `filler` while the given epoch's checkpoint is being made (after
    Lightning gathered it, before the file is written), once (it leaves `marker`)."""

    def __init__(self, epoch: int, filler: str, marker: str) -> None:
        self.epoch, self.filler, self.marker = epoch, Path(filler), Path(marker)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.current_epoch != self.epoch or self.marker.exists():
            return
        self.marker.touch()
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as error:
            assert error.errno == errno.ENOSPC
        finally:
            os.close(fd)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, on another filesystem than the system's temporary folder."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            "this machine does not allow a tmpfs mount; "
            "test_a_write_that_finds_the_disk_full covers the full disk by a patched write"
        )
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_filesystem_leaves_the_last_checkpoint_whole(tmp_path, small_disk):
    straight = main(fit_args(tmp_path / "a", epochs=3, steps=2)).model
    fill = {
        "class_path": "tests.test_checkpoint_files.FillDisk",
        "init_args": {
            "epoch": 1,
            "filler": str(small_disk / "filler"),
            "marker": str(tmp_path / "filled"),
        },
    }
    args = [
        f"--trainer.callbacks+={json.dumps(fill)}",
        f"--trainer.logger.init_args.save_dir={small_disk / 'runs'}",
    ]
    with pytest.raises(OSError, match="no space left on device") as failed:
        main(fit_args(tmp_path / "b", *args, epochs=3, steps=2))
    assert "epoch=1-step=4.ckpt" in str(failed.value)  # names the file it could not write
    (run,) = (small_disk / "runs" / "patchscope_demo").glob("version_*")
    assert only_whole_files(run / "checkpoints") == ["epoch=0-step=2.ckpt", "last.ckpt"]
    (small_disk / "filler").unlink()
    resumed = main(fit_args(tmp_path / "b", *args, "--ckpt_path=last", epochs=3, steps=2))
    assert torch.equal(resumed.model.X, straight.X)


def test_a_write_that_finds_the_disk_full(tmp_path, monkeypatch):
    first = main(fit_args(tmp_path, epochs=1, steps=2))
    folder = log_dir(first.trainer) / "checkpoints"
    real_write_bytes = Path.write_bytes

    def full_disk(self, data):
        if ".ckpt" in self.name:
            real_write_bytes(self, data[:4096])  # what got out before the disk was full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match="no space left on device.*intact|nothing was written"):
        main(fit_args(tmp_path, "--ckpt_path=last", epochs=2, steps=2))
    assert only_whole_files(folder) == ["epoch=0-step=2.ckpt", "last.ckpt"]


def test_a_result_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "results" / "r.json"
    write_text_atomically(path, '{"a": 1}\n')

    def cut_short(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", cut_short)
    with pytest.raises(OSError, match="no space left on device; the previous file is intact"):
        write_text_atomically(path, '{"a": 2}\n')
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]

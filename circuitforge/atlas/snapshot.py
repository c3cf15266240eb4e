"""Snapshots of a running atlas: one file per process, so an interrupted run loses little.

`{log_dir}/atlas_snapshot/rank_{r}.pt` holds the process's profile after its first
`batches_done` batches and the run's settings record (`circuitforge.checkpoints`: what the run
is, with its process count); `--ckpt_path last` continues only a run with the same record, so
its batches are the same.
"""

from __future__ import annotations

from pathlib import Path

from circuitforge.atlas.profile import NeuronProfile
from circuitforge.atomic_files import temporary_path, torch_save_atomically
from circuitforge.checkpoints import EXPERIMENT_CONFIG, read_checkpoint

FOLDER = "atlas_snapshot"


def snapshot_path(folder: str | Path, rank: int) -> Path:
    return Path(folder) / f"rank_{rank}.pt"


def write_snapshot(
    folder: Path, rank: int, record: dict | None, profile: NeuronProfile, batches_done: int
) -> Path:
    tensors = {k: v.detach().cpu() for k, v in profile.tensors().items()}
    snapshot = {EXPERIMENT_CONFIG: record, "batches_done": batches_done, "profile": tensors}
    # a kill mid-write leaves the previous snapshot whole
    return torch_save_atomically(snapshot_path(folder, rank), snapshot)


def read_snapshot(folder: str | Path, rank: int) -> dict:
    """The snapshot of process `rank` in `folder` (`{log_dir}/atlas_snapshot`), read safely."""
    path = snapshot_path(folder, rank)
    temporary_path(path).unlink(missing_ok=True)  # a kill mid-write left it; the snapshot is whole
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (no snapshot was written)")
    return read_checkpoint(path)

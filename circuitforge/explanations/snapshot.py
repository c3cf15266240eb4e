"""A sweep's progress, one file per process: the rows done and the chunk under way.

`{log_dir}/explanations_snapshot/rank_{r}.pt` holds the run's settings record
(`circuitforge.checkpoints`: what the run is, with its process count), every finished row of
that process, and the state of the chunk it is optimising (`ChunkState`, after its last step).
Written atomically after every step (a kill leaves the previous file whole), so a run resumed
from it (`--ckpt_path last`) redoes nothing that was saved.
"""

from __future__ import annotations

from pathlib import Path

from circuitforge.atomic_files import temporary_path, torch_save_atomically
from circuitforge.checkpoints import EXPERIMENT_CONFIG, read_checkpoint

FOLDER = "explanations_snapshot"


def snapshot_path(folder: str | Path, rank: int) -> Path:
    return Path(folder) / f"rank_{rank}.pt"


def write_progress(
    folder: str | Path, rank: int, record: dict | None, rows: list[dict], in_progress: dict | None
) -> Path:
    progress = {EXPERIMENT_CONFIG: record, "rows": rows, "in_progress": in_progress}
    return torch_save_atomically(snapshot_path(folder, rank), progress)


def read_progress(folder: str | Path, rank: int) -> dict:
    """The progress of process `rank` in `folder` (`{log_dir}/explanations_snapshot`)."""
    path = snapshot_path(folder, rank)
    temporary_path(path).unlink(missing_ok=True)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (no snapshot was written)")
    return read_checkpoint(path)

"""A sweep's progress, one file per process: the rows done and the chunk under way.

`{log_dir}/explanations_snapshot/rank_{r}.pt` holds the run's identity, every finished row
of that process, and the state of the chunk it is optimising (`ChunkState`, after its last
step). Written atomically after every step (a kill leaves the previous file whole), so a run
resumed from it redoes nothing that was saved.
"""

from __future__ import annotations

from pathlib import Path

import torch

from circuitforge.atlas.snapshot import refuse_another_run
from circuitforge.atomic_files import temporary_path, torch_save_atomically

FOLDER = "explanations_snapshot"


def snapshot_path(log_dir: str | Path, rank: int) -> Path:
    return Path(log_dir) / FOLDER / f"rank_{rank}.pt"


def write_progress(
    log_dir: str | Path, rank: int, identity: dict, rows: list[dict], in_progress: dict | None
) -> Path:
    progress = {"identity": identity, "rows": rows, "in_progress": in_progress}
    return torch_save_atomically(snapshot_path(log_dir, rank), progress)


def read_progress(log_dir: str | Path, rank: int, identity: dict) -> dict:
    """The snapshot of process `rank` (a `*` in `log_dir` picks the newest match); refused when
    its identity differs from `identity`."""
    if "*" in str(log_dir):
        found = sorted(Path().glob(f"{log_dir}/{FOLDER}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"resume_from: no explanation snapshot under {log_dir}")
        log_dir = found[-1].parent
    path = snapshot_path(log_dir, rank)
    temporary_path(path).unlink(missing_ok=True)
    if not path.is_file():
        raise FileNotFoundError(f"resume_from: {path} does not exist (no snapshot was written)")
    progress = torch.load(path, map_location="cpu", weights_only=True)
    refuse_another_run(path, "sweep", progress["identity"], identity)
    return progress

"""Snapshots of a running atlas: one file per process, so an interrupted run loses little.

`{log_dir}/atlas_snapshot/rank_{r}.pt` holds the process's profile after its first
`batches_done` batches and the identity of the run (model, hook, data, batch size, process
count); a run resuming from it must have the same identity, so its batches are the same.
"""

from __future__ import annotations

from pathlib import Path

import torch

from circuitforge.atlas.profile import NeuronProfile
from circuitforge.atomic_files import temporary_path, torch_save_atomically


def write_snapshot(
    folder: Path, rank: int, identity: dict, profile: NeuronProfile, batches_done: int
) -> Path:
    tensors = {k: v.detach().cpu() for k, v in profile.tensors().items()}
    snapshot = {"identity": identity, "batches_done": batches_done, "profile": tensors}
    # a kill mid-write leaves the previous snapshot whole
    return torch_save_atomically(folder / f"rank_{rank}.pt", snapshot)


def read_snapshot(log_dir: str, rank: int, identity: dict) -> dict:
    """The snapshot of process `rank` under `log_dir` (a `*` picks the newest match)."""
    if "*" in log_dir:
        found = sorted(Path().glob(f"{log_dir}/atlas_snapshot"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"resume_from: no atlas snapshot under {log_dir}")
        folder = found[-1]
    else:
        folder = Path(log_dir) / "atlas_snapshot"
    path = folder / f"rank_{rank}.pt"
    temporary_path(path).unlink(missing_ok=True)  # a kill mid-write left it; the snapshot is whole
    if not path.is_file():
        raise FileNotFoundError(f"resume_from: {path} does not exist (no snapshot was written)")
    snapshot = torch.load(path, map_location="cpu", weights_only=True)
    refuse_another_run(path, "atlas run", snapshot["identity"], identity)
    return snapshot


def refuse_another_run(path: Path, what: str, found: dict, identity: dict) -> None:
    """A snapshot resumes only the run it was written by: refuse it, naming what differs."""
    if found != identity:
        differ = sorted(k for k in identity | found if identity.get(k) != found.get(k))
        raise ValueError(
            f"resume_from: {path} is a snapshot of another {what} (differs in {differ}); "
            "resume with the interrupted run's config and process count"
        )

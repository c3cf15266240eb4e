"""What `--ckpt_path` resumes, checked before anything runs.

- `--ckpt_path last`: the newest version folder of the run's logger whose checkpoint has this
  command line's experiment settings; within it, the newest checkpoint that reads whole
  (`last.ckpt`, or the newest epoch checkpoint when `last.ckpt` is missing or damaged, said so).
- `--ckpt_path FILE`: that file, whole, with this command line's settings.

Any difference in a setting that changes the result is refused with both values named
(`circuitforge.checkpoints.setting_differences`); the checkpoint's settings never replace the
command line's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitforge.checkpoints import (
    EXPERIMENT_CONFIG,
    DamagedCheckpoint,
    newest_intact_checkpoint,
    read_checkpoint,
    setting_differences,
    version_folders,
)

UNKNOWN = "(not written by train.py, or by a circuitforge from before Dec 2026)"


@dataclass
class Resume:
    path: Path
    version_folder: Path | None  # set for `last`: the logger writes there again


def comparable(settings: dict[str, Any], subcommand: str) -> dict[str, Any]:
    """fit compares everything; validate/test/predict only the model and the data."""
    if subcommand == "fit":
        return settings
    return {k: v for k, v in settings.items() if k.startswith(("model", "data"))}


def differences(checkpoint: dict, settings: dict[str, Any], subcommand: str) -> list[str] | None:
    """The differing settings, or None when the checkpoint holds none (not written by train.py)."""
    saved = checkpoint.get(EXPERIMENT_CONFIG)
    if saved is None:
        return None
    return setting_differences(
        comparable(saved["settings"], subcommand), comparable(settings, subcommand)
    )


def check_checkpoint_file(path: Path, settings: dict[str, Any], subcommand: str) -> Resume:
    try:
        checkpoint = read_checkpoint(path)
    except DamagedCheckpoint as error:
        point = newest_intact_checkpoint(path.parent)
        hint = f"; {point.path} is intact: give that" if point is not None else ""
        raise DamagedCheckpoint(f"--ckpt_path: {error}{hint}") from None
    found = differences(checkpoint, settings, subcommand)
    if found is None:
        raise ValueError(
            f"--ckpt_path {path}: this checkpoint holds no experiment settings {UNKNOWN}, so it "
            "cannot be checked against this run: not resumed"
        )
    if found:
        raise ValueError(
            f"--ckpt_path {path} is a checkpoint of another experiment; settings that differ:\n  "
            + "\n  ".join(found)
            + "\nGive the checkpoint's settings to resume it, or start a new run without "
            "--ckpt_path."
        )
    return Resume(path, None)


def find_last(root: Path, settings: dict[str, Any], subcommand: str) -> Resume:
    notes, any_checkpoint = [], False
    for folder in version_folders(root):
        point = newest_intact_checkpoint(folder / "checkpoints")
        if point is None:
            damaged = sorted((folder / "checkpoints").glob("*.ckpt"))
            any_checkpoint |= bool(damaged)
            why = (
                "only damaged checkpoints"
                if damaged
                else "no checkpoint (stopped before its first epoch ended)"
            )
            notes.append(f"{folder.name}: {why}")
            continue
        any_checkpoint = True
        found = differences(point.checkpoint, settings, subcommand)
        if found is None:
            notes.append(f"{folder.name}: {point.path.name} holds no experiment settings {UNKNOWN}")
        elif found:
            notes.append(f"{folder.name} ({point.path.name}) differs: " + "; ".join(found))
        else:
            for skipped in point.skipped:
                say(f"--ckpt_path last: skipped {skipped}")
            if point.path.name != "last.ckpt":
                say(f"--ckpt_path last: {folder.name} has no intact last.ckpt; resuming from "
                    f"{point.path.name}, its newest intact checkpoint")  # fmt: skip
            say(f"--ckpt_path last: resuming {point.path}")
            return Resume(point.path, folder)
    if not any_checkpoint:
        raise FileNotFoundError(
            f"--ckpt_path last: no {root}/version_*/checkpoints/last.ckpt (nor an epoch "
            "checkpoint) to resume from; start the run without --ckpt_path, or give the "
            "checkpoint's path" + ("".join(f"\n  {n}" for n in notes))
        )
    raise ValueError(
        f"--ckpt_path last: no run under {root} has this command line's experiment settings, "
        "so none is resumed:\n  " + "\n  ".join(notes) + "\nGive the settings of the run to "
        "resume, or start a new run without --ckpt_path."
    )


def say(message: str) -> None:
    sys.stderr.write(message + "\n")

"""What `--ckpt_path` resumes, checked before anything runs: one mechanism for every run.

A run is its settings (`circuitforge.checkpoints.experiment_settings`), written by `train.py` as
the run's record into every checkpoint (fit runs) and every snapshot (predict runs that save
their progress: the atlas, the explanation sweep; `SnapshotRun`).

- `--ckpt_path last`: the newest version folder of the run's logger whose record has this
  command line's settings; within it, the newest checkpoint that reads whole (`last.ckpt`, or the
  newest epoch checkpoint when `last.ckpt` is missing or damaged, said so), or for a predict run
  its snapshots. The logger writes into that folder again.
- `--ckpt_path FILE` (fit, validate, test): that checkpoint, whole, with this command line's
  settings. `--ckpt_path FOLDER` (a predict run that saves snapshots): the snapshots of that
  version folder; the run writes a new one.

Any difference in a setting that changes the result is refused with both values named
(`circuitforge.checkpoints.setting_differences`); the record's settings never replace the
command line's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from circuitforge.checkpoints import (
    EXPERIMENT_CONFIG,
    DamagedCheckpoint,
    ResumePoint,
    newest_intact_checkpoint,
    read_checkpoint,
    setting_differences,
    version_folders,
)

UNKNOWN = "(not written by train.py, or by a circuitforge from before Dec 2026)"
NOR_EPOCH = "(nor an epoch checkpoint)"
PROCESSES = "processes"  # a snapshot holds one process's share: the count is part of the run


class SnapshotRun:
    """A predict run that saves its progress in `{log_dir}/{SNAPSHOTS}/rank_{r}.pt`.

    `train.py` sets `run_record` (the settings record each snapshot carries) and, for
    `--ckpt_path`, `resume_folder` (the snapshot folder to continue from); each process checks
    its own snapshot with `check_snapshot` before it continues from it.
    """

    SNAPSHOTS: ClassVar[str]
    run_record: dict | None = None
    resume_folder: Path | None = None


@dataclass
class Resume:
    path: Path  # the checkpoint, or a predict run's snapshot folder
    version_folder: Path | None  # set for `last`: the logger writes there again


def comparable(settings: dict[str, Any], subcommand: str) -> dict[str, Any]:
    """fit compares everything; validate/test/predict the model, the data (and process count)."""
    if subcommand == "fit":
        return settings
    return {k: v for k, v in settings.items() if k.startswith(("model", "data", PROCESSES))}


def differences(
    holder: dict, settings: dict[str, Any], subcommand: str, saved_in: str = "checkpoint"
) -> list[str] | None:
    """The differing settings, or None when `holder` (a checkpoint or a snapshot) holds no
    record (not written by train.py)."""
    saved = holder.get(EXPERIMENT_CONFIG)
    if saved is None:
        return None
    return setting_differences(
        comparable(saved["settings"], subcommand), comparable(settings, subcommand), saved_in
    )


def check_checkpoint_file(path: Path, settings: dict[str, Any], subcommand: str) -> Resume:
    try:
        checkpoint = read_checkpoint(path)
    except DamagedCheckpoint as error:
        point = newest_intact_checkpoint(path.parent)
        hint = f"; {point.path} is intact: give that" if point is not None else ""
        raise DamagedCheckpoint(f"--ckpt_path: {error}{hint}") from None
    refuse_another_run(path, checkpoint, settings, subcommand, "checkpoint")
    return Resume(path, None)


def check_snapshot_folder(path: Path, settings: dict[str, Any], snapshots: str) -> Resume:
    """`--ckpt_path FOLDER` of a predict run: a version folder, or its snapshot folder."""
    folder = path if path.name == snapshots else path / snapshots
    if path.is_file() or not folder.is_dir():
        raise FileNotFoundError(
            f"--ckpt_path {path}: this run continues from the {snapshots}/ folder of an "
            "interrupted run's version folder; give that folder, or --ckpt_path last"
        )
    first = folder / "rank_0.pt"
    if not first.is_file():
        raise FileNotFoundError(f"--ckpt_path {path}: {first} does not exist (no snapshot)")
    refuse_another_run(first, read_checkpoint(first), settings, "predict", "snapshot")
    return Resume(folder, None)


def check_snapshot(path: Path, snapshot: dict, record: dict | None) -> None:
    """Each process's own snapshot, before it continues from it (the CLI read rank 0's)."""
    if record is None:
        raise ValueError(f"{path}: a run without train.py's settings record cannot resume")
    refuse_another_run(path, snapshot, record["settings"], record["subcommand"], "snapshot")


def refuse_another_run(
    path: Path, holder: dict, settings: dict[str, Any], subcommand: str, kind: str
) -> None:
    found = differences(holder, settings, subcommand, kind)
    if found is None:
        raise ValueError(
            f"--ckpt_path {path}: this {kind} holds no experiment settings {UNKNOWN}, so it "
            "cannot be checked against this run: not resumed"
        )
    if found:
        raise ValueError(
            f"--ckpt_path {path} is a {kind} of another experiment; settings that differ:\n  "
            + "\n  ".join(found)
            + f"\nGive the {kind}'s settings to resume it, or start a new run without "
            "--ckpt_path."
        )


def find_last(
    root: Path, settings: dict[str, Any], subcommand: str, snapshots: str | None = None
) -> Resume:
    """The newest version folder under `root` with these settings: its newest whole checkpoint,
    or (`snapshots` given: a predict run) its snapshot folder."""
    kind = "snapshot" if snapshots else "checkpoint"
    notes, any_point = [], False
    for folder in version_folders(root):
        point, note = snapshot_point(folder, snapshots) if snapshots else checkpoint_point(folder)
        if point is None:
            any_point |= "damaged" in note  # there is something to resume, but not whole
            notes.append(f"{folder.name}: {note}")
            continue
        any_point = True
        found = differences(point.checkpoint, settings, subcommand, kind)
        if found is None:
            notes.append(f"{folder.name}: {point.path.name} holds no experiment settings {UNKNOWN}")
        elif found:
            notes.append(f"{folder.name} ({point.path.name}) differs: " + "; ".join(found))
        else:
            for skipped in point.skipped:
                say(f"--ckpt_path last: skipped {skipped}")
            if not snapshots and point.path.name != "last.ckpt":
                say(f"--ckpt_path last: {folder.name} has no intact last.ckpt; resuming from "
                    f"{point.path.name}, its newest intact checkpoint")  # fmt: skip
            resumed = point.path.parent if snapshots else point.path
            say(f"--ckpt_path last: resuming {resumed}")
            return Resume(resumed, folder)
    if not any_point:
        where = f"{snapshots}/rank_0.pt" if snapshots else f"checkpoints/last.ckpt {NOR_EPOCH}"
        raise FileNotFoundError(
            f"--ckpt_path last: no {root}/version_*/{where} to resume from; start the run "
            f"without --ckpt_path, or give the {kind}'s path" + ("".join(f"\n  {n}" for n in notes))
        )
    raise ValueError(
        f"--ckpt_path last: no run under {root} has this command line's experiment settings, "
        "so none is resumed:\n  " + "\n  ".join(notes) + "\nGive the settings of the run to "
        "resume, or start a new run without --ckpt_path."
    )


def checkpoint_point(folder: Path) -> tuple[ResumePoint | None, str]:
    point = newest_intact_checkpoint(folder / "checkpoints")
    if point is not None:
        return point, ""
    if sorted((folder / "checkpoints").glob("*.ckpt")):
        return None, "only damaged checkpoints"
    return None, "no checkpoint (stopped before its first epoch ended)"


def snapshot_point(folder: Path, snapshots: str) -> tuple[ResumePoint | None, str]:
    path = folder / snapshots / "rank_0.pt"
    if not path.is_file():
        return None, "no snapshot (stopped before its first one was written)"
    try:
        return ResumePoint(path, read_checkpoint(path)), ""
    except DamagedCheckpoint as error:
        return None, f"damaged snapshot: {error}"


REMOVED_FLAG = (
    "resume_from is gone: resume an interrupted run (atlas, sweep or fit) with its command line "
    "and --ckpt_path last (or --ckpt_path <its version folder>)"
)


def refuse_removed_flags(args: list[str]) -> None:
    """`--model.init_args.resume_from` (on the command line or in a --config file) is refused,
    naming the one mechanism that replaced it."""
    args = [str(a) for a in args]
    configs = [b for a, b in zip(args, args[1:]) if a == "--config"]
    configs += [a.removeprefix("--config=") for a in args if a.startswith("--config=")]
    keys = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    if any(k.endswith(".resume_from") for k in keys) or any(map(_holds_resume_from, configs)):
        raise ValueError(REMOVED_FLAG)


def _holds_resume_from(config: str) -> bool:
    path = Path(config)
    if not path.is_file():
        return False  # jsonargparse names a missing config file
    try:
        loaded = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return False  # jsonargparse names a file that is not YAML
    model = loaded.get("model") if isinstance(loaded, dict) else None
    init_args = model.get("init_args") if isinstance(model, dict) else None
    return isinstance(init_args, dict) and "resume_from" in init_args


def say(message: str) -> None:
    sys.stderr.write(message + "\n")

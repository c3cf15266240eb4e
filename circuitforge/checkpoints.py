"""Reading checkpoints safely, finding the one to resume, and comparing experiment settings.

What a run is: its settings (`experiment_settings`: the parsed config, less what does not change
the result, plus the digest of the frozen model's weights). `train.py` writes them as the run's
record (`EXPERIMENT_CONFIG`) into every checkpoint of a fit run and every snapshot of a predict
run (atlas, explanation sweep). A resume compares them with the command line's and refuses any
difference, naming both values: the checkpoint never silently replaces what the user asked for.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

EXPERIMENT_CONFIG = "circuitforge_config"

# Settings that say where or how long a run goes, not what it computes. Everything else in the
# config (model, data, our callbacks, seed, precision, gradient settings...) must match to resume.
NOT_PART_OF_THE_RESULT = (
    "config",
    "ckpt_path",
    "checkpoint",
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.min_epochs",
    "trainer.min_steps",
    "trainer.logger",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.enable_checkpointing",
    "trainer.log_every_n_steps",
    "trainer.default_root_dir",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.profiler",
    "data.init_args.cache_dir",
    "data.init_args.num_workers",
    "model.init_args.snapshot_every_n_batches",  # how often progress is saved
    "model.init_args.snapshot_every_n_steps",
)
# The digest of the frozen model's weights (`FrozenModelSpec.identity`): the config names a file
# or a directory, this says what was in it.
MODEL_WEIGHTS = "model.weights"
# Callbacks that only display or time a run.
OBSERVER_CALLBACKS = (
    "lightning.pytorch.callbacks.TQDMProgressBar",
    "lightning.pytorch.callbacks.RichProgressBar",
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.ModelSummary",
    "lightning.pytorch.callbacks.RichModelSummary",
    "lightning.pytorch.callbacks.DeviceStatsMonitor",
)


class DamagedCheckpoint(ValueError):
    """A file that is not a whole checkpoint of ours."""


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint at `path`, loaded as tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    if not zipfile.is_zipfile(path):
        raise DamagedCheckpoint(
            f"{path} ({size} bytes) is not a readable checkpoint: it is not a whole torch "
            "archive (cut short by a kill or a full disk, or not a checkpoint at all)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's text advises loading arbitrary objects: never do that
        kind = type(error).__name__
        raise DamagedCheckpoint(
            f"{path} ({size} bytes) is not a readable checkpoint ({kind}): it is damaged, or "
            "it holds objects other than tensors and plain values, so circuitforge did not "
            "write it; it is not loaded"
        ) from None


@dataclass
class ResumePoint:
    path: Path
    checkpoint: dict
    skipped: list[str] = field(default_factory=list)  # damaged files passed over, and why


def newest_intact_checkpoint(folder: Path) -> ResumePoint | None:
    """The checkpoint of `folder` with the most steps that reads whole (last.ckpt on a tie)."""
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", p.name))
    best: ResumePoint | None = None
    skipped = []
    for path in candidates:
        try:
            checkpoint = read_checkpoint(path)
        except DamagedCheckpoint as error:
            skipped.append(str(error))
            continue
        if best is None or checkpoint.get("global_step", -1) > best.checkpoint.get(
            "global_step", -1
        ):
            best = ResumePoint(path, checkpoint)
    if best is not None:
        best.skipped = skipped
    return best


def version_folders(root: Path) -> list[Path]:
    """The logger's `version_*` folders, newest first (by number; other names by time)."""

    def order(p: Path):
        tail = p.name.removeprefix("version_")
        return (1, int(tail), 0.0) if tail.isdigit() else (0, 0, p.stat().st_mtime)

    return sorted((p for p in root.glob("version_*") if p.is_dir()), key=order, reverse=True)


# --- settings -----------------------------------------------------------------------------------
def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts (and lists of dicts, such as callbacks) as `a.b[1].c` -> value."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out |= flatten(v, f"{prefix}[{i}]")
        return out
    return {prefix: value}


def experiment_settings(config: dict, model_weights: str | None = None) -> dict[str, Any]:
    """What a run is: the settings of a parsed config (one subcommand's) that change what the
    run computes, and the digest of its frozen model's weights when it has one."""
    config = dict(config)
    trainer = dict(config.get("trainer") or {})
    callbacks = trainer.get("callbacks") or []
    if isinstance(callbacks, dict):
        callbacks = [callbacks]
    trainer["callbacks"] = [c for c in callbacks if not _observer(c)]
    config["trainer"] = trainer
    flat = flatten(config)
    settings = {
        k: v
        for k, v in flat.items()
        if not any(k == e or k.startswith((e + ".", e + "[")) for e in NOT_PART_OF_THE_RESULT)
    }
    if model_weights is not None:
        settings[MODEL_WEIGHTS] = model_weights
    return settings


def _observer(callback: Any) -> bool:
    return isinstance(callback, dict) and callback.get("class_path") in OBSERVER_CALLBACKS


def setting_differences(
    saved: dict[str, Any], mine: dict[str, Any], saved_in: str = "checkpoint"
) -> list[str]:
    """`key: checkpoint A, command line B` for every setting that differs."""
    missing = object()
    lines = []
    for key in sorted(saved.keys() | mine.keys()):
        a, b = saved.get(key, missing), mine.get(key, missing)
        if a != b:
            show = [("(not set)" if v is missing else repr(v)) for v in (a, b)]
            lines.append(f"{key}: {saved_in} {show[0]}, command line {show[1]}")
    return lines

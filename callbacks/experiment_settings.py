"""Writes the run's experiment settings into every checkpoint, for `--ckpt_path` to compare.

The CLI adds it to every run (`train.py`); the settings are what the run is: the parsed config
less what does not change the result, and the frozen model's weights digest
(`circuitforge.checkpoints.experiment_settings`). Predict runs that save snapshots write the same
record into each snapshot (`lightning_modules.resume.SnapshotRun`).
"""

from __future__ import annotations

from typing import Any

import lightning as L

from circuitforge.checkpoints import EXPERIMENT_CONFIG


class ExperimentSettingsRecord(L.Callback):
    def __init__(self, subcommand: str, settings: dict[str, Any]) -> None:
        self.subcommand, self.settings = subcommand, settings

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[EXPERIMENT_CONFIG] = {"subcommand": self.subcommand, "settings": self.settings}

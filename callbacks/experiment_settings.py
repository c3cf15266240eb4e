"""Writes the run's experiment settings into every checkpoint, for `--ckpt_path` to compare.

The CLI adds it to every run (`train.py`); the settings are the parsed config less what does not
change the result (`circuitforge.checkpoints.experiment_settings`).
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

"""Base of the callbacks that write `{log_dir}/results/<name>.json` with a resumable history."""

from __future__ import annotations

from typing import Any

import lightning as L

from circuitforge.results import write_result


class ResultCallback(L.Callback):
    result_name = "result"

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def write(self, trainer: L.Trainer, result: dict[str, Any]) -> None:
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, **result}
        self.history.append(entry)
        if trainer.is_global_zero and trainer.log_dir is not None:
            write_result(trainer.log_dir, self.result_name, entry, self.history)

    def tensorboard(self, trainer: L.Trainer):
        from lightning.pytorch.loggers import TensorBoardLogger

        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None

    # The history travels in the checkpoint, so a resumed run keeps the earlier epochs.
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

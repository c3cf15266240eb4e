"""Typed access to what Lightning attaches to the trainer at run time.

`Trainer.datamodule` and `Trainer.callbacks` are set by Lightning's connectors, so a type checker
does not see them, and a module or callback reads them as whatever it needs; these accessors
check the kind once, with an error that names what the run lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import lightning as L

Data = TypeVar("Data", bound=L.LightningDataModule)
Module = TypeVar("Module", bound=L.LightningModule)


def datamodule_of(trainer: L.Trainer | None, kind: type[Data], reader: object) -> Data:
    """The run's datamodule as `kind`, or a ValueError naming the datamodule `reader` needs."""
    datamodule = getattr(trainer, "datamodule", None)
    if not isinstance(datamodule, kind):
        raise ValueError(
            f"{type(reader).__name__} needs data: {kind.__name__}; "
            f"this run's data is {type(datamodule).__name__}"
        )
    return datamodule


def module_of(pl_module: L.LightningModule, kind: type[Module], reader: object) -> Module:
    """The run's model as `kind` (the class whose attributes `reader` reads), or a TypeError."""
    if not isinstance(pl_module, kind):
        raise TypeError(
            f"{type(reader).__name__} reads a {kind.__name__}; "
            f"this run's model is a {type(pl_module).__name__}"
        )
    return pl_module


def callbacks_of(trainer: L.Trainer) -> list[L.Callback]:
    """The run's callbacks."""
    return list(getattr(trainer, "callbacks", []))


def log_dir(trainer: L.Trainer) -> Path:
    """The run's log folder (`{save_dir}/{name}/version_N`), or a ValueError when it has none."""
    folder = trainer.log_dir
    if folder is None:
        raise ValueError("this run has no log folder: give trainer.logger (or default_root_dir)")
    return Path(folder)


def add_callback(trainer: L.Trainer, callback: L.Callback) -> None:
    """Append `callback` to the run's callbacks (after the CLI built the trainer)."""
    getattr(trainer, "callbacks").append(callback)  # noqa: B009  (set by Lightning's connector)

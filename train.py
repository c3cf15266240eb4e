"""Entry point: `python train.py fit --config configs/<experiment>.yaml` (LightningCLI).

`--ckpt_path last` resumes the newest run of the same logger folder: the TensorBoard logger is
pointed back at the version folder that holds `checkpoints/last.ckpt`, so the resumed run keeps
writing its events, checkpoints and results where the interrupted one left them.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")  # sae_lens imports wandb

import lightning as L  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

import callbacks  # noqa: E402, F401  (registers our callbacks for class_path short names)
import datamodules  # noqa: E402, F401
import lightning_modules  # noqa: E402, F401


def latest_version_with_last_checkpoint(logger: TensorBoardLogger) -> str | None:
    root = Path(logger.root_dir)
    found = sorted(root.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent.parent.name if found else None


class CircuitForgeCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One checkpoint callback, always there, writing at every epoch end: the newest epoch's
        # checkpoint and its copy last.ckpt. (With save_top_k=0 Lightning writes last.ckpt
        # only when training ends, so an interrupted run would lose everything.)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.every_n_epochs": 1,
            }
        )

    def before_fit(self) -> None:
        if self.config[self.subcommand].get("ckpt_path") != "last":
            return
        logger = self.trainer.logger
        if not isinstance(logger, TensorBoardLogger):
            raise ValueError("--ckpt_path last needs the TensorBoard logger of the interrupted run")
        version = latest_version_with_last_checkpoint(logger)
        if version is None:
            raise FileNotFoundError(
                f"--ckpt_path last: no {logger.root_dir}/version_*/checkpoints/last.ckpt to "
                "resume from; start the run without --ckpt_path, or give the checkpoint's path"
            )
        logger._version = int(version.split("_", 1)[1]) if version[8:].isdigit() else version


def main(args: list[str] | None = None) -> CircuitForgeCLI:
    return CircuitForgeCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        trainer_defaults={
            "strategy": {"class_path": "lightning_modules.FrozenModelStrategy"},
            "max_epochs": 5,
            "log_every_n_steps": 1,
        },
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()

"""Entry point: `python train.py fit --config configs/<experiment>.yaml` (LightningCLI).

One resume for every run: `--ckpt_path last` resumes the newest run of the same logger folder
that has this command line's experiment settings (what a run is:
`circuitforge.checkpoints.experiment_settings`): the TensorBoard logger is pointed back at its
version folder, so the resumed run keeps writing its events, checkpoints and results where the
interrupted one left them. A fit run continues from its checkpoint; a predict run that saves
snapshots (the atlas, the explanation sweep) from its snapshots. `--ckpt_path FILE` resumes that
checkpoint (`--ckpt_path FOLDER`: that version folder's snapshots) if its settings are this
command line's. Either way a differing setting is refused with both values named
(`lightning_modules/resume.py`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")  # sae_lens imports wandb

import lightning as L  # noqa: E402
import yaml  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

import callbacks  # noqa: E402, F401  (registers our callbacks for class_path short names)
import datamodules  # noqa: E402, F401
import lightning_modules  # noqa: E402, F401
from callbacks.epoch_checkpoint import EpochCheckpoint  # noqa: E402
from callbacks.experiment_settings import ExperimentSettingsRecord  # noqa: E402
from circuitforge.atomic_files import remove_stale_temporaries  # noqa: E402
from circuitforge.checkpoints import experiment_settings  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec  # noqa: E402
from lightning_modules.cli_input import (  # noqa: E402
    our_error,
    refuse_non_finite_settings,
    restore_command_line_nulls,
    run_from_command_line,
)
from lightning_modules.resume import (  # noqa: E402
    PROCESSES,
    SnapshotRun,
    check_checkpoint_file,
    check_snapshot_folder,
    find_last,
    refuse_removed_flags,
)
from lightning_modules.trainer_access import add_callback  # noqa: E402


class CircuitForgeCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One checkpoint callback, always there, writing at every epoch end: the newest epoch's
        # checkpoint and its copy last.ckpt. (With save_top_k=0 Lightning writes last.ckpt
        # only when training ends, so an interrupted run would lose everything.)
        parser.add_lightning_class_args(EpochCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.every_n_epochs": 1,
            }
        )

    def parse_arguments(self, parser, args) -> None:
        refuse_removed_flags(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        restore_command_line_nulls(self.config, sys.argv[1:] if args is None else args)
        refuse_non_finite_settings(self.config)

    def _parse_ckpt_path(self) -> None:
        """Lightning copies the checkpoint's hyper-parameters over the command line here; we
        never do: `before_<subcommand>` compares them with it instead (`lightning_modules.resume`).
        """

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        if self.subcommand is None:
            return
        dumped = self.parser.dump(self.config, skip_link_targets=False, skip_none=False)
        spec = getattr(self.model, "spec", None)
        weights = spec.identity() if isinstance(spec, FrozenModelSpec) else None
        self.settings = experiment_settings(yaml.safe_load(dumped)[self.subcommand], weights)
        if isinstance(self.model, SnapshotRun):  # each process's snapshot holds its share
            self.settings[PROCESSES] = self.trainer.world_size
            self.model.run_record = {"subcommand": self.subcommand, "settings": self.settings}
        add_callback(self.trainer, ExperimentSettingsRecord(self.subcommand, self.settings))

    def resolve_ckpt_path(self) -> None:
        subcommand = self.subcommand
        assert subcommand is not None  # the before_* hooks run for a subcommand
        ckpt_path = self.config_init[subcommand].get("ckpt_path")
        if ckpt_path is None or ckpt_path in ("best", "hpc", "registry"):
            return
        snapshots = self.model.SNAPSHOTS if isinstance(self.model, SnapshotRun) else None
        if snapshots is not None and self.subcommand != "predict":
            snapshots = None  # its snapshots are a predict run's progress
        if ckpt_path == "last":
            logger = self.trainer.logger
            if not isinstance(logger, TensorBoardLogger):
                raise ValueError("--ckpt_path last needs the TensorBoard logger of the run")
            found = find_last(Path(logger.root_dir), self.settings, subcommand, snapshots)
            assert found.version_folder is not None
            version = found.version_folder.name.removeprefix("version_")
            logger._version = int(version) if version.isdigit() else found.version_folder.name
            for sub in ("checkpoints", "results", *([snapshots] if snapshots else [])):
                remove_stale_temporaries(found.version_folder / sub)
        elif snapshots is not None:
            found = check_snapshot_folder(Path(ckpt_path), self.settings, snapshots)
        else:
            found = check_checkpoint_file(Path(ckpt_path), self.settings, subcommand)
        if snapshots is not None:  # the run continues from its snapshots, not a checkpoint
            assert isinstance(self.model, SnapshotRun)
            self.model.resume_folder = found.path
            self.config_init[subcommand]["ckpt_path"] = None
        else:
            self.config_init[subcommand]["ckpt_path"] = str(found.path)

    before_fit = before_validate = before_test = before_predict = resolve_ckpt_path


def main(args: list[str] | None = None) -> CircuitForgeCLI:
    try:
        return CircuitForgeCLI(
            L.LightningModule,
            None,  # any LightningDataModule, and none for runs that read no data
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
    except Exception as error:
        ours = our_error(error)
        if ours is error:
            raise
        raise ours from None  # the constructor's own error, not jsonargparse's wrapping of it


if __name__ == "__main__":
    run_from_command_line(main)

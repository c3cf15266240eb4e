"""TranscoderExport: writes a TranscoderTraining run's transcoders in circuit-tracer's format.

At each checkpoint save and each epoch end, `{directory}` (default `{log_dir}/transcoders`) gets
a transcoder set (`circuitforge.dictionaries.transcoder_set`: `layer_{L}.safetensors` with the
input's centre and both scales folded in, `config.yaml` with `model_kind: transcoder_set`,
`hook_resid_mid` -> `hook_mlp_out`) and a sha256 manifest. circuit-tracer needs layers 0..n-1:
a run that trains only some layers is refused when the export would be incomplete.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from circuitforge.dictionaries.transcoder_set import write_transcoder_set
from circuitforge.dictionaries.transcoders import TRANSCODER_INPUT, TRANSCODER_OUTPUT
from datamodules.activation_tokens import ActivationTokensDataModule
from lightning_modules.trainer_access import datamodule_of, module_of
from lightning_modules.transcoder_training import TranscoderTraining


class TranscoderExport(L.Callback):
    def __init__(self, directory: str | None = None) -> None:
        """Args:
        directory: where the transcoder set goes (default `{log_dir}/transcoders`).
        """
        self.directory = directory
        self._written_at: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        module = module_of(pl_module, TranscoderTraining, self)
        layers = sorted(s.layer for s in module.specs)
        if layers != list(range(len(layers))):
            raise ValueError(
                f"TranscoderExport: circuit-tracer reads layers 0..n-1 with none missing; the "
                f"run trains layers {layers}"
            )

    def folder(self, trainer: L.Trainer) -> Path:
        return Path(self.directory or Path(trainer.log_dir or ".") / "transcoders")

    def export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = module_of(pl_module, TranscoderTraining, self)
        data = datamodule_of(trainer, ActivationTokensDataModule, self)
        folder = self.folder(trainer)  # trainer.log_dir is a collective under ddp: all ask
        if not trainer.is_global_zero or self._written_at == trainer.global_step:
            return
        dead = {
            s.layer: int((module.since_fired(s) >= module.dead_window).sum()) for s in module.specs
        }
        metadata = {
            "model_name": str(module.frozen_model.cfg.model_name),
            "training_tokens": int(module.tokens_seen),
            "num_dead_features": dead,
            "dead_window_tokens": module.dead_window,
            "exclude_special_tokens": data.excluded,
            "context_size": data.context,
        }
        layers = {s.layer: module.exported(s) for s in module.specs}
        write_transcoder_set(folder, layers, TRANSCODER_INPUT, TRANSCODER_OUTPUT, metadata)
        self._written_at = trainer.global_step

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.export(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.export(trainer, pl_module)

"""DictionaryExport: writes every dictionary of a DictionaryTraining run, loadable by sae-lens.

At each checkpoint save and each epoch end, `{directory}/{folder}/` (default directory:
`{log_dir}/dictionaries`) gets the SAE with its input scale folded in (`cfg.json`,
`sae_weights.safetensors`, read by `sae_lens.SAE.load_from_disk`) and a sha256 `manifest.json`;
the metadata says how many tokens it trained on and its dead features.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from circuitforge.dictionaries.export import export_dictionary
from datamodules.activation_tokens import ActivationTokensDataModule
from lightning_modules.dictionary_training import DictionaryTraining
from lightning_modules.trainer_access import datamodule_of, module_of


class DictionaryExport(L.Callback):
    def __init__(self, directory: str | None = None) -> None:
        """Args:
        directory: where the dictionaries go (default `{log_dir}/dictionaries`).
        """
        self.directory = directory
        self._written_at: int | None = None

    def folder(self, trainer: L.Trainer) -> Path:
        return Path(self.directory or Path(trainer.log_dir or ".") / "dictionaries")

    def export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = module_of(pl_module, DictionaryTraining, self)
        data = datamodule_of(trainer, ActivationTokensDataModule, self)
        folder = self.folder(trainer)  # trainer.log_dir is a collective under ddp: all ask
        if not trainer.is_global_zero or self._written_at == trainer.global_step:
            return
        folder.mkdir(parents=True, exist_ok=True)
        for spec in module.specs:
            dead = module.since_fired(spec) >= module.dead_window
            metadata = {
                "training_tokens": int(module.tokens_seen),
                "num_dead_features": int(dead.sum()),
                "dead_window_tokens": module.dead_window,
                "exclude_special_tokens": data.excluded,
                "context_size": data.context,
            }
            export_dictionary(
                module.saes[spec.key()], module.scale(spec), folder / spec.folder_name(), metadata
            )
        self._written_at = trainer.global_step

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.export(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.export(trainer, pl_module)

"""ModelDirectoryExport: writes the trained model as a local model directory when fit ends.

The directory (config, weights, tokenizer, sha256 manifest) is what `FrozenModelSpec(path=...)`
loads; `scripts/build_demo_assets.py` copies it into `assets/demo/model`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from circuitforge.model.local_dir import save_model_dir
from lightning_modules.language_model_pretraining import LanguageModelPretraining
from lightning_modules.trainer_access import log_dir, module_of


class ModelDirectoryExport(L.Callback):
    def __init__(self, directory: str | None = None, reference_texts: list[str] | None = None):
        """Args:
        directory: where to write; default `{log_dir}/model`.
        reference_texts: texts whose logits are saved beside the weights
            (`reference_logits.safetensors`), to check later that the directory loads the
            model that was trained.
        """
        self.directory, self.reference_texts = directory, reference_texts

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        module = module_of(pl_module, LanguageModelPretraining, self)
        target = Path(self.directory or log_dir(trainer) / "model")
        save_model_dir(module.export_model(), target, self.reference_texts)
        print(f"model directory: {target}")

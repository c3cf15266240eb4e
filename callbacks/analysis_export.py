"""AnalysisExport: write an analysis run's `results/<experiment>.json` and pictures, and log them.

Works with every `FrozenModelAnalysis` module (activation patching, direct logit attribution,
logit lens): each leaves an `AnalysisResult` (JSON fields, pictures, tables).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from PIL import Image

from callbacks.result_callback import ResultCallback
from circuitforge.results import AnalysisResult
from lightning_modules.frozen_model_analysis import FrozenModelAnalysis
from lightning_modules.trainer_access import module_of


class AnalysisExport(ResultCallback):
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = module_of(pl_module, FrozenModelAnalysis, self)
        found = module.result
        if not isinstance(found, AnalysisResult):
            raise RuntimeError(f"{type(module).__name__} left no result (no test batches?)")
        self.result_name = module.EXPERIMENT
        self.write(trainer, {"pictures": [f"{n}.png" for n in found.pictures], **found.json})
        if trainer.log_dir is not None and trainer.is_global_zero:
            folder = Path(trainer.log_dir) / "results"
            for name, image in found.pictures.items():
                Image.fromarray(image).save(folder / f"{name}.png")
        writer = self.tensorboard(trainer)
        if writer is not None:
            for name, image in found.pictures.items():
                writer.add_image(
                    f"{self.result_name}/{name}", image, trainer.global_step, dataformats="HWC"
                )
            for name, text in found.tables.items():
                writer.add_text(f"{self.result_name}/{name}", text, trainer.global_step)
            writer.flush()

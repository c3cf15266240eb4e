"""AtlasExport: write the merged atlas (`results/atlas.json`, `atlas.parquet`) and log it.

Runs at the end of the predict run, after the module has merged every process's profile;
only the global-zero process writes. Each top context is re-read from its document and checked
against the token the profile recorded there.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import torch

from circuitforge.atlas.report import atlas_contexts, atlas_json, write_atlas
from circuitforge.model.tokenizer import decode, tokenizer_of
from circuitforge.results import markdown_table
from datamodules.documents import DocumentDataModule
from lightning_modules.activation_atlas import ActivationAtlasModule
from lightning_modules.trainer_access import datamodule_of, module_of


class AtlasExport(L.Callback):
    def __init__(self, window: int = 8, parquet: bool = True, log_top_units: int = 20) -> None:
        """Args:
        window: tokens of context either side of each trigger token.
        parquet: also write `atlas.parquet` (one row per unit and rank).
        log_top_units: TensorBoard gets the top contexts of the units with the largest maxima.
        """
        self.window, self.parquet, self.log_top_units = window, parquet, log_top_units
        self.atlas: dict | None = None

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under ddp: every process asks
        if not trainer.is_global_zero:
            return
        module = module_of(pl_module, ActivationAtlasModule, self)
        data = datamodule_of(trainer, DocumentDataModule, self)
        profile, tokenizer = module.profile, tokenizer_of(module.frozen_model)
        if profile is None:
            raise RuntimeError("the atlas profiled nothing (no predict batches?)")
        contexts = atlas_contexts(
            profile, module.stride, data.document_ids, partial(decode, tokenizer), self.window
        )
        header = {
            "experiment": module.EXPERIMENT,
            "model": module.spec.describe(),
            "model_identity": module.spec.identity(),
            "layer": module.layer,
            "hook_name": module.hook_name,
            "k": module.k,
            "active_threshold": module.active_threshold,
            "skip_bos": module.skip_bos,
            "processes": trainer.world_size,
            "data": data.describe(),
        }
        self.atlas = atlas_json(contexts, profile, header)
        if log_dir is not None:
            write_atlas(Path(log_dir) / "results", self.atlas, self.parquet)
        self._log(trainer, profile)

    def _log(self, trainer: L.Trainer, profile) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or self.atlas is None:
            return
        writer = loggers[0].experiment
        values, _ = profile.top.values_and_ids()
        maxima = values[0].float().cpu()
        seen = profile.top.token[0].cpu() >= 0
        writer.add_histogram("atlas/unit_max", maxima[seen], 0)
        writer.add_histogram("atlas/unit_mean", profile.mean().float().cpu(), 0)
        writer.add_histogram(
            "atlas/unit_fraction_active", profile.fraction_active().float().cpu(), 0
        )
        order = torch.argsort(maxima.masked_fill(~seen, -torch.inf), descending=True)
        for unit in order[: self.log_top_units].tolist():
            entry = self.atlas["neurons"][str(unit)]
            table = markdown_table(
                entry["top_k"], ["activation", "text_index", "token_position", "context"]
            )
            writer.add_text(f"atlas/unit_{unit}", table, 0)
        writer.flush()

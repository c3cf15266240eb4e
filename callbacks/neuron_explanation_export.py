"""NeuronExplanationExport: the sweep's results, written once every process's rows are merged.

`results/neuron_explanations.json` (the rows, the score distributions against their controls,
the neurons where the two views agree and disagree most), `neuron_explanations.parquet` (one
row per neuron; nested fields as JSON text), `neuron_explanations.html` (the self-contained
page), and TensorBoard histograms of each score and its control.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import lightning as L

from circuitforge.atomic_files import write_bytes_atomically, write_text_atomically
from circuitforge.explanations.page import explanation_page
from circuitforge.explanations.summary import summarise, summary_lines
from circuitforge.results import strict_json
from lightning_modules.neuron_explanations import NeuronExplanationModule
from lightning_modules.trainer_access import module_of

SCALARS = [
    "neuron", "layer", "natural_max", "mean_activation", "fraction_active",
    "generation_score", "generation_score_plain", "random_neuron", "generation_baseline",
    "generation_baseline_plain", "agreement", "agreement_baseline", "stability_feature_overlap",
    "stability_same_text",
]  # fmt: skip
HISTOGRAMS = [
    "generation_score", "generation_score_plain", "generation_baseline", "agreement",
    "agreement_baseline", "stability_feature_overlap",
]  # fmt: skip


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {k: [r.get(k) for r in rows] for k in SCALARS}
    for key in ("top_contexts", "seeds", "final_activation", "contrastive_text", "plain_text",
                "x_features", "context_features"):  # fmt: skip
        columns[key] = [json.dumps(r[key]) for r in rows]
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


class NeuronExplanationExport(L.Callback):
    def __init__(self, parquet: bool = True, html: bool = True) -> None:
        """Args:
        parquet: also write `neuron_explanations.parquet`.
        html: also write the page `neuron_explanations.html`.
        """
        self.parquet, self.html = parquet, html
        self.summary: dict | None = None

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under ddp: every process asks
        if not trainer.is_global_zero or log_dir is None:
            return
        module = module_of(pl_module, NeuronExplanationModule, self)
        rows = module.merged_rows()
        self.summary = summarise(rows)
        folder = Path(log_dir) / "results"
        header = {
            "experiment": module.EXPERIMENT,
            "model": module.spec.describe(),
            "source_layer": module.source_layer,
            "target_layer": module.target_layer,
            "sae": module.matched.name,
            "atlas": str(module.atlas_path),
            "seeds": module.seeds,
            "steps": module.steps,
            "processes": trainer.world_size,
            "chunk_seconds": module.timings,  # process 0's chunks of this run
        }
        path = folder / "neuron_explanations.json"
        document = {**header, "summary": self.summary, "rows": rows}
        write_text_atomically(path, strict_json(document, str(path)))
        if self.parquet:
            write_bytes_atomically(folder / "neuron_explanations.parquet", parquet_bytes(rows))
        if self.html:
            title = (
                f"{module.spec.describe()}: layer {module.target_layer} neurons, observed vs caused"
            )
            page = explanation_page(title, summary_lines(self.summary), rows)
            write_text_atomically(folder / "neuron_explanations.html", page)
        self._histograms(trainer, rows)

    def _histograms(self, trainer: L.Trainer, rows: list[dict]) -> None:
        import torch
        from lightning.pytorch.loggers import TensorBoardLogger

        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for key in HISTOGRAMS:
                    values = [r[key] for r in rows if r.get(key) is not None]
                    if values:
                        logger.experiment.add_histogram(f"explanations/{key}", torch.tensor(values))
                logger.experiment.flush()

"""ExplanationBenchmarkExport: the benchmark's results, once every process's rows are merged.

`results/neuron_explanations_benchmark.json`: the run's settings, the held-out corpus's
cross-entropy, the table per method (`circuitforge.explanations.benchmark.explained`), the costs
per neuron per method, and every row (each method's E and scores per neuron);
`neuron_explanations_benchmark.parquet` (one row per neuron and method; when pyarrow is installed,
else said so on stderr); `neuron_explanations_benchmark.md` (the table);
`neuron_explanations_benchmark.html` (the table, the summary figure, every method's E and scores per
neuron: `circuitforge.explanations.benchmark.page`).
"""

from __future__ import annotations

import io
import json
import statistics
import sys
from pathlib import Path

import lightning as L

from circuitforge.atomic_files import write_bytes_atomically, write_text_atomically
from circuitforge.explanations.benchmark.explained import method_table, table_lines
from circuitforge.explanations.benchmark.page import benchmark_page
from circuitforge.results import strict_json
from lightning_modules.explanation_benchmark import ExplanationBenchmarkModule
from lightning_modules.trainer_access import module_of

NAME = "neuron_explanations_benchmark"


def flat_rows(rows: list[dict]) -> list[dict]:
    """One row per (neuron, method): its text and scalar scores, nested ones as JSON text."""
    out = []
    for r in rows:
        for m, s in r["methods"].items():
            out.append(
                {
                    "neuron": r["neuron"], "method": m, "text": s["text"], "s1": s["s1"],
                    "s1_control": s["s1_control"], "s2_rank": (s["s2"] or {}).get("rank"),
                    "s2_auroc": (s["s2"] or {}).get("auroc"), "s3": s["s3"],
                    "s3_control": s["s3_control"], "one_of_three": json.dumps(s["one_of_three"]),
                    "s4": s["s4"], "fluency": s["fluency"],
                }
            )  # fmt: skip
    return out


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = flat_rows(rows)
    buffer = io.BytesIO()
    pq.write_table(pa.table({k: [r[k] for r in flat] for k in flat[0]}), buffer)
    return buffer.getvalue()


def costs(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Median seconds per neuron of each method (and of the scoring), and per 1,000 neurons."""
    names = list(rows[0]["seconds_per_neuron"]) if rows else []
    out = {}
    for name in names:
        median = statistics.median(r["seconds_per_neuron"][name] for r in rows)
        out[name] = {"seconds_per_neuron": median, "hours_per_1000_neurons": median * 1000 / 3600}
    return out


class ExplanationBenchmarkExport(L.Callback):
    def __init__(self, parquet: bool = True) -> None:
        """Args:
        parquet: also write the parquet file (needs pyarrow; said so when it is missing).
        """
        self.parquet = parquet
        self.summary: dict | None = None

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under ddp: every process asks
        if not trainer.is_global_zero or log_dir is None:
            return
        module = module_of(pl_module, ExplanationBenchmarkModule, self)
        rows = module.merged_rows()
        names = list(rows[0]["methods"]) if rows else []
        reference = "m0_context" if "m0_context" in names else None
        self.summary = method_table(rows, names, reference)
        assert module.scoring is not None
        folder = Path(log_dir) / "results"
        document = {
            "experiment": module.EXPERIMENT,
            "model": module.spec.describe(),
            "layer": module.layer,
            "source_layer": module.source_layer,
            "atlas": str(module.atlas_path),
            "held_out": vars(module.held_out),
            "corpus_cross_entropy": module.scoring.corpus_cross_entropy,
            "carriers": module.carriers,
            "kl_targets": module.kl_targets,
            "processes": trainer.world_size,
            "summary": self.summary,
            "costs": costs(rows),
            "rows": rows,
        }
        path = folder / f"{NAME}.json"
        write_text_atomically(path, strict_json(document, str(path)))
        write_text_atomically(folder / f"{NAME}.md", "\n".join(table_lines(self.summary)) + "\n")
        title = f"Explanation benchmark: {module.spec.describe()} layer {module.layer}"
        notes = [f"{len(rows)} neurons; held-out documents {vars(module.held_out)}"]
        write_text_atomically(
            folder / f"{NAME}.html", benchmark_page(title, notes, self.summary, rows)
        )
        if self.parquet and rows:
            try:
                data = parquet_bytes(rows)
            except ImportError:
                sys.stderr.write(f"pyarrow is not installed: {NAME}.parquet not written\n")
            else:
                write_bytes_atomically(folder / f"{NAME}.parquet", data)

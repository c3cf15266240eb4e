"""FeatureCircuitExport: write `results/feature_circuit.json` and `.png`, and log them."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np

from callbacks.result_callback import ResultCallback
from circuitforge.feature_circuits.export import circuit_json, circuit_picture
from circuitforge.results import markdown_table


class FeatureCircuitExport(ResultCallback):
    result_name = "feature_circuit"

    def __init__(self, max_edges: int | None = 5000, max_edges_drawn: int = 200) -> None:
        """Args:
        max_edges: the JSON keeps the largest |weight| edges only (all when null).
        max_edges_drawn: the picture draws the largest edges only.
        """
        super().__init__()
        self.max_edges, self.max_edges_drawn = max_edges, max_edges_drawn

    def on_test_end(self, trainer: L.Trainer, pl_module) -> None:
        found = pl_module.result
        graph = circuit_json(
            pl_module.frozen_model,
            pl_module.points,
            found["features"],
            found["errors"],
            found["kept"],
            found["edges"],
        )
        quality = found["quality"]
        n_edges = len(graph["edges"])
        if self.max_edges is not None:
            graph["edges"] = sorted(graph["edges"], key=lambda e: -abs(e["weight"]))[
                : self.max_edges
            ]
        self.write(
            trainer,
            {
                "metric": {
                    "name": "logit_difference",
                    "full": quality["metric_full"],
                    "empty": quality["metric_empty"],
                    "circuit": quality["metric_circuit"],
                    "complement": quality["metric_complement"],
                },
                "faithfulness": quality["faithfulness"],
                "completeness": quality["completeness"],
                "method": pl_module.method,
                "ablation": pl_module.ablation,
                "examples": found["examples"],
                "held_out_examples": found["held_out_examples"],
                "points": [p.hook_name for p in pl_module.points],
                "edges_between_kept_nodes": n_edges,
                **graph,
            },
        )
        picture = circuit_picture(graph, self.max_edges_drawn)
        if trainer.log_dir is not None and trainer.is_global_zero:
            picture.save(Path(trainer.log_dir) / "results" / "feature_circuit.png")
        writer = self.tensorboard(trainer)
        if writer is not None:
            rows = sorted(graph["nodes"], key=lambda n: -abs(n["score"]))[:40]
            table = markdown_table(rows, ["id", "score", "promoted", "suppressed"])
            header = (
                f"faithfulness {quality['faithfulness']:.3f}, "
                f"completeness {quality['completeness']:.3f}\n\n"
            )
            writer.add_text("feature_circuit/nodes", header + table, trainer.global_step)
            writer.add_image(
                "feature_circuit/graph", np.asarray(picture), trainer.global_step, dataformats="HWC"
            )
            writer.flush()

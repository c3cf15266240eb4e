"""FeatureCircuitExport: write `results/feature_circuit.json` and `.png`, and log them."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np

from callbacks.result_callback import ResultCallback
from circuitforge.atomic_files import write_text_atomically
from circuitforge.data.texts import load_texts
from circuitforge.feature_circuits.attribution_graph import feature_file
from circuitforge.feature_circuits.export import circuit_json, circuit_picture, direct_logit_tokens
from circuitforge.feature_circuits.feature_contexts import ContextCorpus, feature_examples
from circuitforge.feature_circuits.result import FeatureCircuitResult
from circuitforge.feature_circuits.shares import error_shares
from circuitforge.feature_circuits.to_attribution_graph import (
    circuit_attribution_graph,
    graph_layers,
)
from circuitforge.results import markdown_table, strict_json
from circuitforge.viewer.graph_page import feature_graph, graph_page
from lightning_modules.feature_circuit import FeatureCircuitModule
from lightning_modules.trainer_access import module_of


class FeatureCircuitExport(ResultCallback):
    result_name = "feature_circuit"

    def __init__(
        self,
        max_edges: int | None = 5000,
        max_edges_drawn: int = 200,
        contexts: ContextCorpus | None = None,
    ) -> None:
        """Args:
        max_edges: the JSON keeps the largest |weight| edges only (all when null).
        max_edges_drawn: the picture draws the largest edges only.
        contexts: a corpus to find each kept feature's top contexts in (every token's
            activation around its strongest ones): shown in the page, kept in the JSON, and
            written as the attribution graph's feature files (`results/features/`).
        """
        super().__init__()
        self.max_edges, self.max_edges_drawn = max_edges, max_edges_drawn
        self.contexts = contexts

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = module_of(pl_module, FeatureCircuitModule, self)
        found = module.result
        if not isinstance(found, FeatureCircuitResult):
            raise RuntimeError("FeatureCircuitModule left no result (no test batches?)")
        graph = circuit_json(
            module.frozen_model,
            module.points,
            found.features,
            found.errors,
            found.kept,
            found.edges,
            module.prompt_tokens() if module.positions == "each" else None,
            found.activations,
            found.embedding_edges,
        )
        examples = self.feature_examples(module, graph)
        quality = found.quality
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
                "method": module.method,
                "ablation": module.ablation,
                "positions": module.positions,
                "quality_curve": found.quality_curve,
                "error_shares": error_shares(
                    [p.name for p in module.points], found.features, found.errors
                ),
                "examples": found.examples,
                "held_out_examples": found.held_out_examples,
                "points": [p.hook_name for p in module.points],
                "edges_between_kept_nodes": n_edges,
                **graph,
            },
        )
        picture = circuit_picture(graph, self.max_edges_drawn)
        if trainer.log_dir is not None and trainer.is_global_zero:
            folder = Path(trainer.log_dir) / "results"
            picture.save(folder / "feature_circuit.png")
            self.write_pages(folder, module, graph, quality, examples)
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

    def feature_examples(self, module: FeatureCircuitModule, graph: dict) -> dict:
        """With `contexts`: (point index, feature) -> its top examples, also put in the nodes."""
        if self.contexts is None:
            return {}
        names = [p.name for p in module.points]
        wanted: dict[int, list[int]] = {}
        for n in graph["nodes"]:
            if n["feature"] != "error":
                wanted.setdefault(names.index(n["id"].split("/")[0]), []).append(n["feature"])
        texts = [
            t[: self.contexts.chars]
            for t in load_texts(self.contexts.path, self.contexts.documents)
        ]
        found = feature_examples(module.frozen_model, module.points, wanted, texts, self.contexts)
        for n in graph["nodes"]:
            if n["feature"] != "error":
                key = (names.index(n["id"].split("/")[0]), n["feature"])
                n["contexts"] = [
                    {"tokens": e.tokens, "activations": e.activations} for e in found[key]
                ]
        return found

    def write_pages(
        self,
        folder: Path,
        module: FeatureCircuitModule,
        graph: dict,
        quality: dict,
        examples: dict,
    ) -> None:
        """`feature_circuit.html` (our viewer) and, with per-position nodes,
        `attribution_graph.json` (circuit-tracer / Neuronpedia's format), with the feature
        files of its panel when there are `examples`."""
        each = module.positions == "each"
        prompt = module.graph_prompt() if each else None
        names = [p.name for p in module.points]
        summary = [
            f"faithfulness {quality['faithfulness']:.3f}, completeness "
            f"{quality['completeness']:.3f} ({module.method}, {module.ablation} ablation)",
            f"{len(graph['nodes'])} nodes, the {len(graph['edges'])} largest edges",
        ]
        if prompt is not None:
            summary.append(f"prompt: {prompt['prompt']!r} -> {prompt['answer'][1]!r}")
        page = graph_page(
            f"feature circuit: {module.spec.describe()}",
            summary,
            feature_graph(graph, names, prompt["tokens"] if prompt else None),
        )
        write_text_atomically(folder / "feature_circuit.html", page)
        if prompt is None:
            return
        model = module.frozen_model
        attribution = circuit_attribution_graph(
            graph, module.points, prompt["prompt"], prompt["ids"], prompt["tokens"],
            prompt["answer"], model.cfg.n_layers, slug="circuitforge-feature-circuit",
            scan=module.spec.describe(), feature_json_base_url="features" if examples else None,
        )  # fmt: skip
        layer_of = graph_layers(module.points)
        for (i, feature), found in examples.items():
            point = module.points[i]
            promoted, suppressed = direct_logit_tokens(model, point, feature, 10)
            feature_file(
                folder / "features", layer_of[point.name], feature,
                [(e.tokens, e.activations) for e in found],
                [(t, -rank) for rank, t in enumerate(promoted)],
                [(t, rank) for rank, t in enumerate(suppressed)],
                transcoder_id=point.sae.name, quantile_name="Top activations",
            )  # fmt: skip
        path = folder / "attribution_graph.json"
        write_text_atomically(path, strict_json(attribution, str(path), indent=None))

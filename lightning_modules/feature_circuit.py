"""FeatureCircuitModule: a sparse feature circuit of a task, found by attribution (a test run).

`python train.py test --config configs/feature_circuits/demo.yaml`. Nothing is trained. Each
test step scores every SAE feature and error term of the spliced points on one batch of prompt
pairs (one-step attribution patching or integrated gradients, `circuitforge.feature_circuits`);
at the epoch end the nodes are selected, the edges between them computed with the residual
correction, and faithfulness and completeness measured on the held-out pairs. The
`FeatureCircuitExport` callback writes the result.
"""

from __future__ import annotations

import torch

from circuitforge.feature_circuits.circuit import (
    Ablation,
    Method,
    NodeScores,
    batch_attribution,
    circuit_quality,
    select_nodes,
    summed_edges,
)
from circuitforge.feature_circuits.points import SAEGroup, SAEPoint, load_points
from circuitforge.model.forward import block_device
from circuitforge.model.spec import FrozenModelSpec
from lightning_modules.frozen_model_analysis import FrozenModelAnalysis


class FeatureCircuitModule(FrozenModelAnalysis):
    EXPERIMENT = "feature_circuit"

    def __init__(
        self,
        model: FrozenModelSpec,
        saes: list[SAEGroup],
        ablation: Ablation = "interchange",
        method: Method = "ig",
        ig_steps: int = 10,
        nodes_per_point: int | None = 20,
        node_threshold: float | None = None,
    ) -> None:
        """Args:
        model: the frozen language model.
        saes: the SAEs spliced in, as groups (`source` with `{layer}`, `layers`).
        ablation: `interchange` (a feature's value on the corrupted prompt) or `zero`.
        method: `attribution` (one gradient step) or `ig` (integrated gradients, `ig_steps`).
        ig_steps: points on the path from clean to ablated activations.
        nodes_per_point: at most this many features per point (largest |score|).
        node_threshold: keep only nodes with |score| >= this (the error terms too).
        """
        super().__init__(model)
        self.save_hyperparameters()
        if method == "ig" and ig_steps < 1:
            raise ValueError(f"ig_steps must be at least 1, got {ig_steps}")
        self.ablation, self.method, self.ig_steps = ablation, method, ig_steps
        self.nodes_per_point, self.node_threshold = nodes_per_point, node_threshold
        self.points: list[SAEPoint] = load_points(self.frozen_model, saes)

    def on_test_start(self) -> None:
        for point in self.points:  # each SAE beside the block it reads (the strategy placed them)
            point.to(block_device(self.frozen_model, point.layer))

    def on_test_epoch_start(self) -> None:
        with torch.inference_mode(False):  # see test_step
            self.scores = NodeScores(self.points)
        self.batches: list[dict] = []

    def analyse(self, batch: dict) -> None:  # (outside inference mode: see the base class)
        found = batch_attribution(
            self.frozen_model, self.points, batch, self.ablation, self.method, self.ig_steps
        )
        self.scores.add(found.effects)
        self.batches.append(batch)
        self.log("test/logit_difference", found.metric.mean(), batch_size=len(found.metric))

    def finish(self) -> dict:
        features, errors = self.scores.mean()
        kept = select_nodes(features, errors, self.nodes_per_point, self.node_threshold)
        model = self.frozen_model
        edges = summed_edges(model, self.points, self.batches, kept, self.ablation)
        held_out = [
            {k: v.to(self.device).clone() for k, v in b.items()}
            for b in self.trainer.datamodule.validation_batches()
        ]
        quality = circuit_quality(model, self.points, held_out, kept, self.ablation)
        self.log("test/faithfulness", quality["faithfulness"])
        self.log("test/completeness", quality["completeness"])
        return {
            "features": features,
            "errors": errors,
            "kept": kept,
            "edges": edges,
            "quality": quality,
            "examples": self.scores.examples,
            "held_out_examples": sum(len(b["clean"]) for b in held_out),
        }

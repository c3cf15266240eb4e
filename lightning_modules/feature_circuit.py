"""FeatureCircuitModule: a sparse feature circuit of a task, found by attribution (a test run).

`python train.py test --config configs/feature_circuits/demo.yaml`. Nothing is trained. Each
test step scores every SAE feature and error term of the spliced points on one batch of prompt
pairs (one-step attribution patching or integrated gradients, `circuitforge.feature_circuits`);
at the epoch end the nodes are selected, the edges between them computed with the residual
correction, and faithfulness and completeness measured on the held-out pairs. The
`FeatureCircuitExport` callback writes the result.
"""

from __future__ import annotations

from typing import Literal

import torch

from circuitforge.ablation import Ablation
from circuitforge.batches import PairBatch
from circuitforge.feature_circuits.ablation import node_masks
from circuitforge.feature_circuits.circuit import (
    BatchStates,
    Method,
    NodeScores,
    batch_attribution,
    masks_quality,
    select_nodes,
    summed_edges,
    summed_embedding_edges,
    with_gradients,
)
from circuitforge.feature_circuits.points import SAEGroup, SAEPoint, load_points
from circuitforge.feature_circuits.positions import (
    PositionScores,
    position_edges,
    position_masks,
    select_position_nodes,
)
from circuitforge.feature_circuits.result import FeatureCircuitResult
from circuitforge.model.forward import block_device
from circuitforge.model.spec import FrozenModelSpec
from datamodules.prompt_pairs import PromptPairDataModule
from lightning_modules.frozen_model_analysis import FrozenModelAnalysis
from lightning_modules.trainer_access import datamodule_of


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
        positions: Literal["summed", "each"] = "summed",
        quality_curve: list[int] | None = None,
        reuse_states_gib: float = 4.0,
    ) -> None:
        """Args:
        model: the frozen language model.
        saes: the SAEs spliced in, as groups (`source` with `{layer}`, `layers`).
        ablation: `interchange` (a feature's value on the corrupted prompt), `zero`, or `mean`
            (its mean over the batch's clean prompts, position by position; Marks et al.).
        method: `attribution` (one gradient step) or `ig` (integrated gradients, `ig_steps`).
        ig_steps: points on the path from clean to ablated activations.
        nodes_per_point: at most this many features per point (largest |score|).
        node_threshold: keep only nodes with |score| >= this (the error terms too).
        positions: `summed` (a node per feature, its effects summed over positions) or `each`:
            a node per feature and token position, the nodes of an attribution graph; the
            prompts must align (one prompt, or one template: `data.init_args.template`).
        quality_curve: also measure faithfulness and completeness keeping at most n nodes per
            point, for each n of this list (the curve of quality against circuit size).
        """
        super().__init__(model)
        self.save_hyperparameters()
        if method == "ig" and ig_steps < 1:
            raise ValueError(f"ig_steps must be at least 1, got {ig_steps}")
        self.ablation: Ablation = ablation
        self.method: Method = method
        self.ig_steps = ig_steps
        self.nodes_per_point, self.node_threshold = nodes_per_point, node_threshold
        if positions not in ("summed", "each"):
            raise ValueError(f"positions must be summed or each, got {positions!r}")
        self.positions = positions
        self.quality_curve = sorted(quality_curve or [])
        self.reuse_states_bytes = int(reuse_states_gib * 2**30)
        self.points: list[SAEPoint] = load_points(self.frozen_model, saes)

    def on_test_start(self) -> None:
        for point in self.points:  # each SAE beside the block it reads (the strategy placed them)
            point.to(block_device(self.frozen_model, point.layer))

    def on_test_epoch_start(self) -> None:
        with torch.inference_mode(False):  # see test_step
            self.scores: NodeScores | PositionScores = (
                NodeScores(self.points)
                if self.positions == "summed"
                else PositionScores(self.points)
            )
        self.batches: list[PairBatch] = []
        self.states: list[BatchStates | None] = []

    def analyse(self, batch: PairBatch) -> None:  # (outside inference mode: see the base class)
        found = batch_attribution(
            self.frozen_model, self.points, batch, self.ablation, self.method, self.ig_steps
        )
        if isinstance(self.scores, PositionScores):
            self.scores.add(found.effects, found.states.clean)
        else:
            self.scores.add(found.effects)
        self.batches.append(batch)
        self.states.append(found.states)
        held = [(i, s.nbytes()) for i, s in enumerate(self.states) if s is not None]
        while held and sum(size for _, size in held) > self.reuse_states_bytes:
            self.states[held.pop(0)[0]] = None  # the oldest first: their edges recompute them
        self.log("test/logit_difference", found.metric.mean(), batch_size=len(found.metric))

    def prompt_tokens(self) -> list[str]:
        """The first scored prompt, token by token (the positions of per-position nodes)."""
        return self.graph_prompt()["tokens"]

    @torch.no_grad()
    def graph_prompt(self) -> dict:
        """The first scored prompt up to its read position: text, ids, tokens, and its answer
        (vocab id, token, the model's probability of it there)."""
        batch = self.batches[0]
        read = int(batch.read[0].nonzero().max())
        ids = batch.clean[0, : read + 1].tolist()
        tokenizer = self.frozen_model.tokenizer
        decode = (lambda i: tokenizer.decode(i)) if tokenizer is not None else str
        logits = self.frozen_model(batch.clean[:1, : read + 1])[0, -1].float()
        answer = int(batch.answer[0])
        return {
            "prompt": decode(ids),
            "ids": ids,
            "tokens": [decode([i]) for i in ids],
            "answer": (answer, decode([answer]), float(logits.softmax(-1)[answer])),
        }

    def finish(self) -> FeatureCircuitResult:
        model = self.frozen_model
        data = datamodule_of(self.trainer, PromptPairDataModule, self)
        held_out = [b.to(self.device).clone() for b in data.validation_batches()]
        states = with_gradients(model, self.points, self.batches, self.states)
        scores, activations = self.scores, None
        if isinstance(scores, PositionScores):
            features, errors = scores.mean()
            width = scores.scored_width()
            activations = scores.mean_activations()
            for b in held_out:
                if b.clean.shape[1] != width:
                    raise ValueError(
                        f"per-position nodes: held-out prompts have {b.clean.shape[1]} "
                        f"positions, the scored ones {width} (use one template)"
                    )
            kept = select_position_nodes(
                features, errors, self.nodes_per_point, self.node_threshold
            )
            edges = summed_edges(
                model, self.points, self.batches, kept, self.ablation, position_edges, states
            )
            masks = position_masks(self.points, kept, width)
            embedding = summed_embedding_edges(
                model, self.points, self.batches, kept[0].nodes, self.ablation, states
            )
        else:
            features, errors = scores.mean()
            kept = select_nodes(features, errors, self.nodes_per_point, self.node_threshold)
            edges = summed_edges(
                model, self.points, self.batches, kept, self.ablation, states=states
            )
            masks = node_masks(self.points, kept)
            embedding = None
        quality = masks_quality(model, self.points, held_out, masks, self.ablation)
        curve = [
            {"nodes_per_point": n, **self.quality_with(n, features, errors, held_out)}
            for n in self.quality_curve
        ]
        self.log("test/faithfulness", quality["faithfulness"])
        self.log("test/completeness", quality["completeness"])
        return FeatureCircuitResult(
            features=features,
            errors=errors,
            kept=kept,
            edges=edges,
            quality=quality,
            examples=self.scores.examples,
            held_out_examples=sum(len(b.clean) for b in held_out),
            quality_curve=curve,
            activations=activations,
            embedding_edges=embedding,
        )

    def quality_with(self, n: int, features, errors, held_out: list[PairBatch]) -> dict:
        """Faithfulness and completeness of the circuit of at most `n` nodes per point."""
        if isinstance(self.scores, PositionScores):
            kept = select_position_nodes(features, errors, n, self.node_threshold)
            masks = position_masks(self.points, kept, self.scores.scored_width())
        else:
            masks = node_masks(self.points, select_nodes(features, errors, n, self.node_threshold))
        quality = masks_quality(self.frozen_model, self.points, held_out, masks, self.ablation)
        nodes = sum(int(m.sum()) + int(torch.as_tensor(e).sum()) for m, e in masks)
        return {"nodes": nodes, **quality}

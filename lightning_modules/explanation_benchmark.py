"""ExplanationBenchmarkModule: every method's text E per neuron, scored on held-out text (issue 26).

`python train.py predict --config configs/explanations/benchmark_gemma3_l9.yaml`. Each predict
step takes one chunk of neurons (`NeuronBatchDataModule`, restricted to the development or
held-out split), runs every method of `methods` on it, builds the controls, and scores each text
(`circuitforge.explanations.benchmark`: S1-S4 and fluency). Progress is written after every
method of a chunk (`circuitforge.explanations.snapshot`, the sweep's): `--ckpt_path last`
continues an interrupted run with no finished chunk or method redone. Under ddp each process
takes every world-th chunk; process 0 merges the rows. `ExplanationBenchmarkExport` writes them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from circuitforge.atlas.vector_x import load_atlas
from circuitforge.explanations.atlas_view import AtlasView, read_atlas
from circuitforge.explanations.benchmark.carriers import (
    DEFAULT_CARRIERS,
    check_carrier_tokens,
    check_carriers,
)
from circuitforge.explanations.benchmark.controls import chunk_seed
from circuitforge.explanations.benchmark.held_out import HeldOut
from circuitforge.explanations.benchmark.methods import Setting
from circuitforge.explanations.benchmark.output_effect import check_kl_targets
from circuitforge.explanations.benchmark.rows import score_chunk
from circuitforge.explanations.benchmark.scoring import Scoring, build_scoring
from circuitforge.explanations.benchmark.split import Split, select_neurons
from circuitforge.explanations.benchmark.texts import MethodPlan, chunk_texts
from circuitforge.explanations.snapshot import read_progress, snapshot_path, write_progress
from circuitforge.model.internals import mlp_width
from circuitforge.model.placement import DevicePlan, place_model
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.model.tokenizer import tokenizer_of
from circuitforge.patchscope.baseline import DEFAULT as DEFAULT_BASELINE
from circuitforge.patchscope.baseline import (
    CorpusBaseline,
    WordsBaseline,
    checked_baseline,
    placeholder_baseline,
)
from circuitforge.patchscope.objective import check_layers_and_neurons
from circuitforge.patchscope.prompt import locate_placeholder
from circuitforge.patchscope.recipe import Recipe
from datamodules.neuron_batches import NeuronBatchDataModule, NeuronChunk
from lightning_modules.frozen_model_module import FrozenModelModule
from lightning_modules.frozen_model_strategy import FrozenModelStrategy
from lightning_modules.resume import SnapshotRun, check_snapshot
from lightning_modules.trainer_access import datamodule_of

FOLDER = "benchmark_snapshot"


class ExplanationBenchmarkModule(SnapshotRun, FrozenModelModule):
    EXPERIMENT = "explanation_benchmark"
    SNAPSHOTS = FOLDER

    def __init__(
        self,
        model: FrozenModelSpec,
        layer: int,
        source_layer: int,
        atlas: str,
        held_out: dict[str, Any],
        methods: list[str],
        method_options: dict[str, dict[str, Any]] | None = None,
        control_base: str | None = "m0_context",
        carriers: list[str] | None = None,
        kl_targets: list[float] | None = None,
        clamp_prompts: int = 8,
        clamp_prompt_tokens: int = 24,
        s4_window: int = 16,
        s4_per_side: int = 10,
        quantile: float = 0.999,
        split: Split = "held_out",
        n_development: int = 256,
        split_seed: int = 0,
        max_neurons: int | None = None,
        max_tokens: int = 24,
        prompt: str = "We say that a x",
        placeholder: str = "x",
        target_prompt: str = "A detailed description of x is that",
        baseline: WordsBaseline | CorpusBaseline = DEFAULT_BASELINE,
        alpha: float = 1.5,
        new_tokens: int = 20,
        decode_batch_size: int = 64,
        steps: int = 50,
        lr: float = Recipe.lr,
        seed: int = 0,
    ) -> None:
        """Args:
        model: the frozen language model.
        layer: the layer whose MLP neurons are explained (the atlas's).
        source_layer: where the Patchscope methods inject and read X (`resid_pre`).
        atlas: `atlas.json`/`.json.gz` of `blocks.{layer}.mlp.hook_post`, of this model.
        held_out: documents the atlas did not use: `{source, start, n_documents, max_tokens}`
            (`circuitforge.explanations.benchmark.held_out.HeldOut`); S3's prompts are the
            `clamp_prompts` documents right after them.
        methods: method names (`circuitforge/explanations/benchmark/methods.py`): m0_context,
            m1_vector_x, m2_patchscope, and mN_<key> for each key of
            `circuitforge.explanations.methods.METHODS` (m4_vocab_proj, m5_token_change, m6_epo).
        method_options: per method name, its own keyword options.
        control_base: the method whose texts the random-neuron and shuffled controls use (null:
            no controls).
        carriers: S1's carrier sentences, each with one `{E}` slot (default: 3 neutral ones).
        kl_targets: S3's clamp sizes, as KL(clean || clamped) (default [0.25, 0.5]).
        s4_window, s4_per_side: S4's context length and contexts per side (0: no S4).
        quantile: S1's unit, each neuron's quantile on the held-out documents.
        split, n_development, split_seed: which neurons (`split.py`); max_neurons: the first N.
        max_tokens: every E is cut to this many tokens.
        prompt, placeholder, target_prompt, baseline, alpha, new_tokens, decode_batch_size,
            steps, lr: the Patchscope (M1, M2, the mean-vector control), as in the sweep.
        seed: the controls' partners and S4's draws.
        """
        super().__init__(model)
        self.save_hyperparameters()
        frozen = self.frozen_model
        check_layers_and_neurons(frozen, source_layer, layer, [0])
        self.layer, self.source_layer, self.seed = layer, source_layer, seed
        self.carriers = list(DEFAULT_CARRIERS if carriers is None else carriers)
        check_carriers(self.carriers)
        check_carrier_tokens(tokenizer_of(frozen), self.carriers)
        self.kl_targets = [0.25, 0.5] if kl_targets is None else list(kl_targets)
        check_kl_targets(self.kl_targets)
        self.plan = MethodPlan(list(methods), dict(method_options or {}), control_base, max_tokens)
        self.atlas_path = atlas
        self.view: AtlasView = read_atlas(atlas, layer, mlp_width(frozen))
        self._check_atlas_model(atlas)
        self.held_out = HeldOut(**held_out)
        self.held_out.check_unused_by(self.view.data)
        self.split = (split, n_development, split_seed, max_neurons)
        self.scoring_args = dict(
            kl_targets=self.kl_targets, clamp_prompts=clamp_prompts,
            clamp_prompt_tokens=clamp_prompt_tokens, s4_window=s4_window,
            s4_per_side=s4_per_side, quantile=quantile, seed=seed,
        )  # fmt: skip
        self.prompt = locate_placeholder(frozen, prompt, placeholder)
        self.target_prompt = locate_placeholder(frozen, target_prompt, placeholder)
        self.baseline_setting = checked_baseline(baseline)
        self.recipe = Recipe(lr, "typical_norm", "ball")
        self.decoding = (alpha, new_tokens, decode_batch_size, steps)
        self.setting: Setting | None = None
        self.scoring: Scoring | None = None
        self.rows: dict[int, dict] = {}
        self.in_progress: dict | None = None
        self.log_dir: Path | None = None

    def _check_atlas_model(self, atlas: str) -> None:
        path, found = load_atlas(atlas)
        identity = found.get("model_identity")
        if identity is not None and identity != self.spec.identity():
            raise ValueError(
                f"{path} was made with another model ({found.get('model')}, weights "
                f"{identity}); this run's is {self.spec.describe()} ({self.spec.identity()})"
            )
        if identity is None and found.get("model") not in (None, self.spec.describe()):
            raise ValueError(
                f"{path} was made with {found.get('model')}, not {self.spec.describe()}"
            )

    @property
    def injection_layer(self) -> int:
        return self.source_layer

    def setup(self, stage: str) -> None:
        data = datamodule_of(self.trainer, NeuronBatchDataModule, self)
        model = self.frozen_model
        d_mlp = mlp_width(model)
        data.bind_model(d_mlp)  # a neuron out of range: one line, before any forward
        data.neurons = select_neurons(data.neurons, d_mlp, *self.split)
        short = [len(c) for c in data.chunks() if len(c) < 3]
        if short:
            raise ValueError(
                f"a chunk of {short[0]} neurons: the controls and the 1-of-3 test need >= 3 per "
                f"chunk; change data.batch_size ({data.batch_size}) or max_neurons"
            )
        if not isinstance(self.trainer.strategy, FrozenModelStrategy):
            device = self.trainer.strategy.root_device
            place_model(model, DevicePlan.split(model.cfg.n_layers, [device]))
        found = placeholder_baseline(model, self.baseline_setting, self.prompt, self.source_layer)
        alpha, new_tokens, decode_batch_size, steps = self.decoding
        self.setting = Setting(
            self.view, self.source_layer, self.prompt, self.target_prompt, found.mean.float(),
            found.typical_norm, alpha, new_tokens, decode_batch_size, self.recipe, steps,
        )  # fmt: skip
        args: dict[str, Any] = self.scoring_args
        self.scoring = build_scoring(model, self.layer, self.held_out, self.carriers, **args)

    def on_predict_epoch_start(self) -> None:
        log_dir = self.trainer.log_dir  # a collective under ddp: every process asks
        self.log_dir = Path(log_dir or self.trainer.default_root_dir)
        self.rows, self.in_progress = {}, None
        if self.resume_folder is not None:
            rank = self.global_rank
            found = read_progress(self.resume_folder, rank)
            check_snapshot(snapshot_path(self.resume_folder, rank), found, self.run_record)
            self.rows = {r["neuron"]: r for r in found["rows"]}
            self.in_progress = found["in_progress"]
            self.resume_folder = None

    def predict_step(self, batch: NeuronChunk, batch_idx: int) -> None:
        if torch.is_inference_mode_enabled():
            raise ValueError(
                "the benchmark optimises vectors inside predict: set trainer.inference_mode: false"
            )
        neurons = batch.neurons
        if all(n in self.rows for n in neurons):
            return  # scored before the interruption
        assert self.setting is not None and self.scoring is not None
        kept = (
            self.in_progress
            if self.in_progress and self.in_progress["chunk"] == batch.chunk
            else {}
        )
        seed = chunk_seed(self.seed, batch.chunk)

        def saved(texts: dict[str, list[str]], seconds: dict[str, float]) -> None:
            self.in_progress = {"chunk": batch.chunk, "texts": texts, "seconds": seconds}
            self.save_progress()

        with torch.no_grad():
            texts, seconds = chunk_texts(
                self.frozen_model, self.layer, neurons, self.plan, self.setting, seed,
                kept.get("texts"), kept.get("seconds"), saved,
            )  # fmt: skip
            started = time.perf_counter()
            rows = score_chunk(self.frozen_model, self.scoring, batch.chunk, neurons, texts)
        scored = time.perf_counter() - started
        for row in rows:
            row["seconds_per_neuron"] = {m: s / len(neurons) for m, s in seconds.items()}
            row["seconds_per_neuron"]["scoring"] = scored / len(neurons)
            self.rows[row["neuron"]] = row
        self.in_progress = None
        self.save_progress()

    def save_progress(self) -> None:
        assert self.log_dir is not None
        rows = list(self.rows.values())
        write_progress(
            self.log_dir / FOLDER, self.global_rank, self.run_record, rows, self.in_progress
        )

    def on_predict_epoch_end(self) -> None:
        self.save_progress()
        if self.trainer.world_size > 1:
            self.trainer.strategy.barrier()
            if self.trainer.is_global_zero:
                assert self.log_dir is not None
                for rank in range(1, self.trainer.world_size):
                    for row in read_progress(self.log_dir / FOLDER, rank)["rows"]:
                        self.rows[row["neuron"]] = row

    def merged_rows(self) -> list[dict]:
        order = datamodule_of(self.trainer, NeuronBatchDataModule, self).neurons
        missing = [n for n in order if n not in self.rows]
        if missing:
            raise RuntimeError(f"neurons {missing[:10]} were not scored (of {len(order)})")
        return [self.rows[n] for n in order]

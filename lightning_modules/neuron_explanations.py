"""NeuronExplanationModule: every neuron of a layer explained two ways and scored (a predict run).

`python train.py predict --config configs/explanations/gemma3_l9.yaml`. Each predict step takes
one chunk of B neurons (`NeuronBatchDataModule`) and
1. optimises one residual vector per (neuron, seed) at the placeholder of the dummy prompt,
   all in one batch (`circuitforge.explanations.optimise`: the gradient Patchscope recipe of
   `configs/patchscope/gemma3_l6_n969.yaml`, with each neuron's hinge at its atlas maximum);
2. decodes them with the Patchscope, reads their SAE features, and scores both views
   (`circuitforge.explanations.chunk`, `scores`).
The recipe's options (all off by default: the old recipe): the norm held at the typical norm
(`norm_constraint: sphere`), a specificity term, X started from (`init: contexts`) and kept
near (`anchor`) the mean residual of the neuron's top atlas contexts, several carrier prompts
(`carrier_prompts`), rows stopped at their target (`freeze_at_target`), decoding at the
injection scale a rule picks (`injection_scales`). `trainer.precision: bf16-mixed` runs the
optimisation and decoding under bf16 autocast; the scores are read in fp32. Two speed-ups that
compute the same up to rounding are on by default (`cached_prefix`, `combined_unembed`;
measured in docs/measurements/issue26_speed.md).
The vectors are the only thing optimised; the model is frozen. Progress is written after every
step (`circuitforge.explanations.snapshot`): the same command line with `--ckpt_path last`
continues an interrupted sweep with nothing redone. Under ddp each process takes every
world-th chunk and the rows are merged on process 0 at the end. `NeuronExplanationExport`
writes the results.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from circuitforge.explanations.atlas_view import AtlasView, context_residuals, read_atlas
from circuitforge.explanations.chunk import (
    Decoder,
    context_features,
    explain_rows,
    reference_features,
)
from circuitforge.explanations.optimise import (
    ChunkState,
    final_activations,
    initial_rows,
    optimise_chunk,
)
from circuitforge.explanations.scores import other_neuron
from circuitforge.explanations.shards import shard
from circuitforge.explanations.snapshot import (
    FOLDER,
    read_progress,
    snapshot_path,
    write_progress,
)
from circuitforge.model.hooks import resid_pre
from circuitforge.model.internals import mlp_width
from circuitforge.model.placement import DevicePlan, place_model
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.numerics import require_at_least_one
from circuitforge.patchscope.baseline import DEFAULT as DEFAULT_BASELINE
from circuitforge.patchscope.baseline import (
    CorpusBaseline,
    WordsBaseline,
    checked_baseline,
    placeholder_baseline,
)
from circuitforge.patchscope.constraints import NormConstraint
from circuitforge.patchscope.objective import (
    CarrierObjective,
    NeuronObjective,
    check_layers_and_neurons,
    neuron_objective,
)
from circuitforge.patchscope.prompt import locate_placeholder
from circuitforge.patchscope.recipe import Recipe
from circuitforge.patchscope.scales import check_scales
from circuitforge.sae.matching import MatchedSAE, SAESource, load_matching_sae
from datamodules.neuron_batches import NeuronBatchDataModule, NeuronChunk
from lightning_modules.frozen_model_module import FrozenModelModule
from lightning_modules.frozen_model_strategy import FrozenModelStrategy
from lightning_modules.resume import SnapshotRun, check_snapshot
from lightning_modules.trainer_access import datamodule_of


class NeuronExplanationModule(SnapshotRun, FrozenModelModule):
    EXPERIMENT = "neuron_explanations"
    SNAPSHOTS = FOLDER

    def __init__(
        self,
        model: FrozenModelSpec,
        source_layer: int,
        target_layer: int,
        atlas: str,
        sae: SAESource,
        seeds: list[int] | None = None,
        init_noise: float = 0.1,
        steps: int = 50,
        lr: float = Recipe.lr,
        prompt: str = "We say that a x",
        placeholder: str = "x",
        baseline: WordsBaseline | CorpusBaseline | str = DEFAULT_BASELINE,
        target_prompt: str = "A detailed description of x is that",
        alpha: float = 1.5,
        new_tokens: int = 20,
        decode_batch_size: int = 64,
        top_k: int = 10,
        snapshot_every_n_steps: int = 1,
        n_words: int | None = None,
        norm_constraint: NormConstraint = "ball",
        specificity: float = 0.0,
        anchor: float = 0.0,
        init: str = "baseline",
        carrier_prompts: list[str] | None = None,
        freeze_at_target: bool = False,
        injection_scales: list[float] | None = None,
        cached_prefix: bool = True,
        combined_unembed: bool = True,
    ) -> None:
        """Args:
        model: the frozen language model.
        source_layer: X is injected at `blocks.{source_layer}.hook_resid_pre`.
        target_layer: the layer whose MLP neurons are explained (the atlas's layer).
        atlas: `atlas.json` (or `.json.gz`) of `blocks.{target_layer}.mlp.hook_post`: each
            neuron's top contexts and natural maximum (the hinge target and the score's unit).
        sae: the SAE that reads the injection point (`{layer}` picks it).
        seeds: one vector per neuron and seed; seed 0 starts at the word baseline, seed s > 0 at
            the baseline plus seeded noise of `init_noise` x the typical norm.
        steps: Adam steps per chunk (the gradient Patchscope's 5 epochs x 10 steps).
        lr: Adam step as a fraction of the typical residual norm: the recipe
            (`circuitforge.patchscope.recipe.Recipe`: `lr_scale: typical_norm`,
            `norm_constraint: ball`) of the single-neuron run, with each neuron's hinge at its
            atlas maximum.
        prompt, placeholder: the dummy prompt X is optimised in, and its placeholder token.
        baseline: where the vectors start and what they are decoded against, the setting of
            the single-neuron run (`circuitforge/patchscope/baseline.py`): `{words: N}`, the
            mean word in the placeholder's slot, or `{corpus: ...}`.
        target_prompt, alpha, new_tokens: the Patchscope decoding (contrastive, against the
            baseline).
        decode_batch_size: vectors decoded at once (3 streams each, full vocabulary logits).
        top_k: SAE features compared (X's, by increase over the baseline; the contexts', by
            the increase of their mean over that of 64 random neurons' contexts).
        snapshot_every_n_steps: write progress every n optimisation steps (and after every
            chunk); 0: only after chunks. `--ckpt_path last` continues an interrupted sweep:
            its finished neurons are kept and its chunk under way continues from its last step.
        n_words: removed; refused, naming `baseline: {words: N}`.
        norm_constraint: `ball` (rows longer than the typical norm shrunk to it), `sphere` (the
            norm held at the typical norm) or `none`.
        specificity: weight of the mean over the layer's other neurons of relu(a) / their atlas
            maximum (`Recipe.specificity`).
        anchor: weight of ||x - x0||^2 / typical_norm^2 (`Recipe.anchor`), x0 the start.
        init: `baseline` (the word baseline) or `contexts`: the mean residual at
            `blocks.{source_layer}.hook_resid_pre` of the neuron's top atlas contexts.
        carrier_prompts: more prompts X is injected into besides `prompt` (each with one
            placeholder); the neuron's activation is their mean. List `target_prompt` to
            optimise in the reading prompt too.
        freeze_at_target: a row stops at the first step it reaches its target.
        injection_scales: decode each vector at one of these multiples of itself, the
            smallest at which its neuron reaches its atlas maximum at the reading prompt's
            placeholder (else the one where it is largest; `circuitforge/patchscope/scales.py`).
            Default `[1.0]`.
        cached_prefix: the optimisation runs blocks S..T on the placeholder's position alone,
            over keys and values of the positions before it computed once
            (`NeuronObjective(cached_prefix=True)`); false: the whole prompt at every step.
        combined_unembed: the contrastive decoding's logits in one unembedding of the mixed
            residuals (`forward.contrastive_unembed`) instead of two; false: two.
        """
        super().__init__(model)
        self.save_hyperparameters()
        require_at_least_one(
            steps=steps, new_tokens=new_tokens, decode_batch_size=decode_batch_size, top_k=top_k
        )
        self.source_layer, self.target_layer = source_layer, target_layer
        self.seeds = [0] if seeds is None else list(seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: at least one, each once; got {self.seeds}")
        self.recipe = Recipe(lr, "typical_norm", norm_constraint, specificity, anchor)
        if init not in ("baseline", "contexts"):
            raise ValueError(f"init must be 'baseline' or 'contexts', got {init!r}")
        self.init, self.freeze_at_target = init, freeze_at_target
        self.baseline_setting = checked_baseline(baseline, n_words)
        self.init_noise, self.steps = init_noise, steps
        self.top_k, self.snapshot_every = top_k, snapshot_every_n_steps
        frozen = self.frozen_model
        check_layers_and_neurons(frozen, source_layer, target_layer, [0])
        self.prompt = locate_placeholder(frozen, prompt, placeholder)
        self.carriers = [locate_placeholder(frozen, p, placeholder) for p in carrier_prompts or []]
        self.decoder = Decoder(
            locate_placeholder(frozen, target_prompt, placeholder),
            alpha,
            new_tokens,
            decode_batch_size,
            tuple(check_scales([1.0] if injection_scales is None else list(injection_scales))),
            combined_unembed,
        )
        self.cached_prefix = cached_prefix
        self.atlas_path = atlas
        self.view: AtlasView = read_atlas(atlas, target_layer, mlp_width(frozen))
        self.matched: MatchedSAE = load_matching_sae(
            sae, resid_pre(source_layer), frozen.cfg.d_model
        )
        self.baseline = torch.zeros(frozen.cfg.d_model)
        self.typical_norm = 0.0
        self.context_reference = torch.zeros(0)
        self.context_top: dict[int, tuple[list[int], torch.Tensor]] = {}
        self._objective: NeuronObjective | CarrierObjective | None = None
        self.starts: dict[int, torch.Tensor] = {}  # init: contexts, per neuron
        self.rows: dict[int, dict] = {}
        self.in_progress: ChunkState | None = None
        self.timings: list[dict] = []  # per chunk done by this process in this run
        self.log_dir: Path | None = None

    @property
    def injection_layer(self) -> int:
        return self.source_layer

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "chunks"):
            raise ValueError("NeuronExplanationModule needs data: NeuronBatchDataModule")
        model = self.frozen_model
        datamodule.bind_model(model.cfg.d_mlp)
        if not isinstance(self.trainer.strategy, FrozenModelStrategy):
            device = self.trainer.strategy.root_device  # ddp: each process holds the model
            place_model(model, DevicePlan.split(model.cfg.n_layers, [device]))
        found = placeholder_baseline(model, self.baseline_setting, self.prompt, self.source_layer)
        self.baseline, self.typical_norm = found.mean.float(), found.typical_norm
        self.context_reference = reference_features(model, self.view, self.matched)

    @property
    def objective(self) -> NeuronObjective | CarrierObjective:
        if self._objective is None:
            self._objective = neuron_objective(
                self.frozen_model,
                [self.prompt, *self.carriers],
                self.source_layer,
                self.target_layer,
                self.cached_prefix,
            )
        return self._objective

    def natural_maxima(self) -> torch.Tensor:
        return torch.tensor([self.view.natural_max(n) for n in range(len(self.view.neurons))])

    # --- the sweep ---------------------------------------------------------------------------
    def on_predict_epoch_start(self) -> None:
        log_dir = self.trainer.log_dir  # a collective under ddp: every process asks
        self.log_dir = Path(log_dir or self.trainer.default_root_dir)
        self.rows, self.in_progress, self.timings = {}, None, []
        if self.resume_folder is not None:  # --ckpt_path: the interrupted sweep's progress
            rank = self.global_rank
            found = read_progress(self.resume_folder, rank)
            check_snapshot(snapshot_path(self.resume_folder, rank), found, self.run_record)
            self.rows = {r["neuron"]: r for r in found["rows"]}
            if found["in_progress"] is not None:
                self.in_progress = ChunkState.from_dict(found["in_progress"])
            self.resume_folder = None  # a second predict explains everything again
        # the observed side of this process's neurons still to do, in one pass over the corpus
        every = datamodule_of(self.trainer, NeuronBatchDataModule, self).chunks()
        chunks = [every[i] for i in shard(len(every), self.global_rank, self.trainer.world_size)]
        todo = [n for chunk in chunks for n in chunk if n not in self.rows]
        d_mlp = mlp_width(self.frozen_model)
        wanted = list(dict.fromkeys(todo + [other_neuron(n, d_mlp) for n in todo]))
        hook = self.matched.hook_name  # the tensor of blocks.{S}.hook_resid_pre (init: contexts)
        residuals = context_residuals(self.frozen_model, self.view, wanted, hook)
        self.context_top = context_features(
            self.frozen_model,
            self.view,
            self.matched,
            wanted,
            self.top_k,
            self.context_reference,
            residuals,
        )
        if self.init == "contexts":
            self.starts = {n: residuals[n].mean(0) for n in todo if len(residuals[n])}

    def predict_step(self, batch: NeuronChunk, batch_idx: int) -> None:
        if torch.is_inference_mode_enabled():
            raise ValueError(
                "the sweep optimises vectors inside predict: set trainer.inference_mode: false"
            )
        neurons = batch.neurons
        if all(n in self.rows for n in neurons):
            return  # explained before the interruption
        rows_neurons = [n for n in neurons for _ in self.seeds]
        rows_seeds = [s for _ in neurons for s in self.seeds]
        started = time.perf_counter()
        state = self.in_progress
        starts = torch.cat([self.start_rows(n) for n in neurons])
        if state is None or state.neurons != rows_neurons:
            state = ChunkState(rows_neurons, rows_seeds, 0, starts, {}, [])
        targets = torch.tensor([self.view.natural_max(n) for n in rows_neurons])
        state = optimise_chunk(
            self.objective,
            state,
            self.steps,
            self.recipe,
            self.typical_norm,
            targets,
            on_step=self._save_step,
            freeze_at_target=self.freeze_at_target,
            other_maxima=self.natural_maxima() if self.recipe.specificity > 0 else None,
            anchor_to=starts if self.recipe.anchor > 0 else None,
        )
        optimised = time.perf_counter()
        final = final_activations(self.objective, state.x, rows_neurons)
        with torch.no_grad():
            rows = explain_rows(
                self.frozen_model,
                self.view,
                self.matched,
                self.decoder,
                self.source_layer,
                self.target_layer,
                state.x,
                final,
                self.baseline.to(self.objective.device),
                rows_neurons,
                rows_seeds,
                self.top_k,
                self.context_top,
            )
        for row in rows:
            row["activation_history"] = [
                [h[i] for i, m in enumerate(rows_neurons) if m == row["neuron"]]
                for h in state.history
            ]
            self.rows[row["neuron"]] = row
        self.timings.append(
            {
                "chunk": batch.chunk,
                "neurons": len(neurons),
                "optimise_seconds": optimised - started,
                "explain_seconds": time.perf_counter() - optimised,
            }
        )
        self.in_progress = None
        self.save_progress()

    def start_rows(self, neuron: int) -> torch.Tensor:
        """The neuron's rows' starts (one per seed): the baseline, or its contexts' mean."""
        if self.init == "contexts" and neuron not in self.starts:
            raise ValueError(f"init: contexts, but neuron {neuron} has no atlas contexts")
        centre = self.starts[neuron] if self.init == "contexts" else self.baseline
        return initial_rows(centre, self.typical_norm, self.seeds, self.init_noise)

    def _save_step(self, state: ChunkState) -> None:
        self.in_progress = state
        if self.snapshot_every and state.step % self.snapshot_every == 0:
            self.save_progress()

    def save_progress(self) -> None:
        assert self.log_dir is not None
        in_progress = None if self.in_progress is None else self.in_progress.to_dict()
        write_progress(
            self.log_dir / FOLDER,
            self.global_rank,
            self.run_record,
            list(self.rows.values()),
            in_progress,
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
            raise RuntimeError(f"neurons {missing[:10]} were not explained (of {len(order)})")
        return [self.rows[n] for n in order]

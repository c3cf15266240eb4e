"""ResidualVectorModule: a residual-stream vector X optimised to drive one MLP neuron.

X (B vectors: one per target neuron and seed) is the only trainable parameter, kept in fp32
even when the frozen model runs in bf16. Each step injects X at the placeholder of the dummy
prompt at `blocks.{S}.hook_resid_pre` and runs blocks S..T only (`NeuronObjective`); the loss is
minus the activation of `blocks.{T}.mlp.hook_post[..., neuron]`.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from circuitforge.atlas.vector_x import AtlasSeed, atlas_seeds
from circuitforge.explanations.atlas_view import read_atlas
from circuitforge.model.hooks import resid_pre
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
from circuitforge.patchscope.recipe import LrScale, Recipe, step
from lightning_modules.frozen_model_module import FrozenModelModule

INITS = ("baseline", "zeros", "random", "atlas")


def checked_init(init: str) -> str:
    if init == "mean":
        raise ValueError("init: mean is now init: baseline (X starts at the baseline)")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


class ResidualVectorModule(FrozenModelModule):
    EXPERIMENT = "residual_vector"
    baseline: torch.Tensor  # buffers (registered in __init__)
    typical_norm: torch.Tensor
    neuron_index: torch.Tensor

    def __init__(
        self,
        model: FrozenModelSpec,
        source_layer: int,
        target_layer: int,
        neurons: list[int] | None,
        seeds: list[int] | None = None,
        prompt: str = "<pad> <pad> <pad> x",
        placeholder: str = "x",
        init: str = "baseline",
        lr: float = Recipe.lr,
        lr_scale: LrScale = Recipe.lr_scale,
        norm_constraint: NormConstraint = Recipe.norm_constraint,
        target_activation: float | None = None,
        baseline: WordsBaseline | CorpusBaseline | str = DEFAULT_BASELINE,
        atlas: str | None = None,
        steps_per_epoch: int = 10,
        n_words: int | None = None,
        specificity: float = 0.0,
        anchor: float = 0.0,
        carrier_prompts: list[str] | None = None,
    ) -> None:
        """The defaults are the recipe measured to read something on a real model (Gemma-3-270M,
        `scripts/patchscope_recipes.py`, README "Gradient Patchscope on a real model"); the seed
        study's recipe is `baseline: {corpus: ...}, lr: 0.05, lr_scale: absolute,
        norm_constraint: none` (configs/patchscope/gemma2_*.yaml and the toy demo.yaml say so).
        The run reads no data: no `data:` block (the module yields its own step schedule).

        Args:
        model: the frozen language model.
        source_layer: X is injected at `blocks.{source_layer}.hook_resid_pre`.
        target_layer: the neuron is read at `blocks.{target_layer}.mlp.hook_post`.
        neurons: target neuron(s); one vector per (neuron, seed) pair, optimised in one batch.
            With `init: atlas`, null picks the atlas maximum.
        seeds: seeds of the `random` init (default `[0]`).
        prompt: the dummy prompt; its placeholder token is where X goes.
        init: `baseline` (X starts at the baseline, as the seed study), `zeros`, `random`
            (seeded, scaled to the baseline's typical norm), or `atlas`: Vector X, the residual
            stream at the neuron's strongest context in the atlas (re-run, at `source_layer`).
        lr: Adam learning rate (with `lr_scale: typical_norm`, a fraction of the typical norm).
        lr_scale: `absolute` (the seed study: Adam steps of about `lr` per coordinate) or
            `typical_norm`: Adam's rate is `lr * typical_norm / sqrt(d_model)`, so one step moves
            X by about `lr` of the typical residual norm. Real models need it: Gemma-3-270M's
            residual norms are ~3,700 at layer 6, where steps of 0.05 leave X where it started.
        norm_constraint: `none` (the seed study), `ball` or `sphere` at the typical norm.
        target_activation: stop pushing the neuron past this value (hinge loss
            `relu(target - activation)`), e.g. about the neuron's natural maximum from the atlas.
            None: maximise without bound (the seed study), which on a real model drives the
            neuron to hundreds of times its natural range, off every text the model has seen.
        baseline: what X starts from (`init: baseline`), is decoded against, and whose typical
            norm scales the steps and the ball (`circuitforge/patchscope/baseline.py`):
            `{words: N}`, the mean residual at the placeholder with each of N vocabulary words
            put there (an "average word" in that slot), or `{corpus: <source>, n_documents: N,
            window: W}` (the seed study: the mean residual at the last token of documents).
        atlas: the `atlas.json` of `init: atlas` (an atlas of `target_layer`'s MLP neurons).
        steps_per_epoch: optimisation steps per epoch (after each: callbacks, checkpoint).
        n_words: removed; refused, naming `baseline: {words: N}`.
        specificity: weight of the mean over the layer's other neurons of relu(a) / their atlas
            maximum (`Recipe.specificity`; needs `atlas:`).
        anchor: weight of ||x - x0||^2 / typical_norm^2, x0 the initial vectors.
        carrier_prompts: more prompts X is injected into besides `prompt`; the neuron's
            activation is their mean (the sweep's setting of the same name).
        """
        super().__init__(model)
        self.save_hyperparameters()
        self.automatic_optimization = False  # each step is the recipe's own `step`
        seeds = [0] if seeds is None else list(seeds)
        self.source_layer, self.target_layer = source_layer, target_layer
        self.init, self.target_activation = checked_init(init), target_activation
        self.recipe = Recipe(lr, lr_scale, norm_constraint, specificity, anchor)
        self.baseline_setting = checked_baseline(baseline, n_words)
        require_at_least_one(steps_per_epoch=steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        if target_activation is not None and not math.isfinite(target_activation):
            raise ValueError(f"target_activation must be a finite number, got {target_activation}")
        frozen = self.frozen_model
        self.atlas_seeds: list[AtlasSeed] = []
        if init == "atlas":
            if atlas is None:
                raise ValueError("init: atlas needs atlas: <path to atlas.json>")
            self.atlas_seeds = atlas_seeds(frozen, atlas, neurons, source_layer, target_layer)
            neurons = [s.entry.neuron for s in self.atlas_seeds]
        elif neurons is None:
            raise ValueError("give the target neuron(s); only init: atlas can pick one itself")
        check_layers_and_neurons(frozen, source_layer, target_layer, list(neurons))
        self.prompt = locate_placeholder(frozen, prompt, placeholder)
        self.carriers = [locate_placeholder(frozen, p, placeholder) for p in carrier_prompts or []]
        self.other_maxima: torch.Tensor | None = None
        if specificity > 0:
            if atlas is None:
                raise ValueError("specificity > 0 needs atlas: <path> (the neurons' maxima)")
            view = read_atlas(atlas, target_layer, frozen.cfg.d_mlp or 0)
            self.other_maxima = torch.tensor([view.natural_max(n) for n in sorted(view.neurons)])
        self.vector_neurons = [n for n in neurons for _ in seeds]
        self.vector_seeds = [s for _ in neurons for s in seeds]
        d_model = frozen.cfg.d_model
        self.X = nn.Parameter(torch.zeros(len(self.vector_neurons), d_model, dtype=torch.float32))
        self.register_buffer("baseline", torch.zeros(d_model, dtype=torch.float32))
        self.register_buffer("typical_norm", torch.zeros((), dtype=torch.float32))
        self.register_buffer("neuron_index", torch.tensor(self.vector_neurons), persistent=False)
        self.activation_history: list[list[float]] = []
        self._objective: NeuronObjective | CarrierObjective | None = None
        self.start: torch.Tensor | None = None  # X's initial vectors (the anchor's x0)

    # --- what the strategy and the callbacks read ------------------------------------------
    @property
    def injection_layer(self) -> int:
        return self.source_layer

    @property
    def injection_hook(self) -> str:
        return resid_pre(self.source_layer)

    def vector_names(self) -> list[str]:
        return [f"neuron{n}_seed{s}" for n, s in zip(self.vector_neurons, self.vector_seeds)]

    # --- set-up ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if getattr(self.trainer, "datamodule", None) is not None:
            raise ValueError(
                "ResidualVectorModule reads no data: drop the data: block (the baseline is the "
                "model's baseline: setting, the steps its steps_per_epoch)"
            )
        found = placeholder_baseline(
            self.frozen_model, self.baseline_setting, self.prompt, self.source_layer
        )
        mean, typical = found.mean, found.typical_norm
        self.baseline.copy_(mean)
        self.typical_norm.fill_(typical)
        self.start = self.initial_vectors()
        with torch.no_grad():  # a checkpoint, when resuming, overwrites this afterwards
            self.X.copy_(self.start)

    def initial_vectors(self) -> torch.Tensor:
        n, d = self.X.shape
        if self.init == "baseline":
            return self.baseline.expand(n, d).clone()
        if self.init == "zeros":
            return torch.zeros(n, d)
        if self.init == "atlas":  # one Vector X per neuron, repeated over seeds
            per_neuron = {s.entry.neuron: s.vector for s in self.atlas_seeds}
            return torch.stack([per_neuron[n] for n in self.vector_neurons])
        rows = []
        for seed in self.vector_seeds:
            g = torch.Generator().manual_seed(seed)
            row = torch.randn(d, generator=g)
            rows.append(row * (float(self.typical_norm) / row.norm()))
        return torch.stack(rows)

    @property
    def objective(self) -> NeuronObjective | CarrierObjective:
        if self._objective is None:  # built after the strategy placed the model
            self._objective = neuron_objective(
                self.frozen_model,
                [self.prompt, *self.carriers],
                self.source_layer,
                self.target_layer,
            )
        return self._objective

    # --- optimisation ------------------------------------------------------------------------
    def forward(self) -> torch.Tensor:
        return self.objective(self.X, self.neuron_index)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        done = step(
            self.recipe,
            self.objective,
            self.X,
            cast(torch.optim.Optimizer, self.optimizers()),  # Lightning's wrapper of the Adam
            self.neuron_index,
            self.targets(),
            float(self.typical_norm),
            self.global_step,
            self.manual_backward,
            other_maxima=self.other_maxima,
            anchor_to=self.start if self.recipe.anchor > 0 else None,
        )
        self.activation_history.append(done.activations.cpu().tolist())
        for name, value in zip(self.vector_names(), done.activations):
            self.log(f"activation/{name}", value, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss", done.loss, on_step=True, on_epoch=False)
        return done.loss

    def targets(self) -> torch.Tensor | None:
        """The hinge's target per vector (`target_activation`), or None: maximise."""
        if self.target_activation is None:
            return None
        return torch.full((len(self.vector_neurons),), self.target_activation)

    def train_dataloader(self) -> DataLoader:
        """The step schedule: an epoch is `steps_per_epoch` steps on the same dummy prompt."""
        return DataLoader(TensorDataset(torch.arange(self.steps_per_epoch)), batch_size=1)

    def val_dataloader(self) -> DataLoader:
        """One evaluation of the vectors as they are (`validate`, and after each epoch)."""
        return DataLoader(TensorDataset(torch.arange(1)), batch_size=1)

    def validation_step(self, batch, batch_idx: int) -> None:
        """`validate` evaluates X as it is (from its init, or from --ckpt_path)."""
        for name, value in zip(self.vector_names(), self().detach()):
            self.log(f"val/activation/{name}", value)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.recipe.make_optimizer(self.X, float(self.typical_norm))

    @torch.no_grad()
    def current_activations(self) -> list[float]:
        return self().cpu().tolist()

    # --- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["activation_history"] = self.activation_history

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.activation_history = list(checkpoint.get("activation_history", []))

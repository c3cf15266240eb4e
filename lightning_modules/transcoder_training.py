"""TranscoderTraining: per-layer skip transcoders (resid_mid -> mlp_out), fed by one forward.

`python train.py fit --config configs/dictionaries/demo_transcoders.yaml`. The same run as
`DictionaryTraining` (one frozen forward per batch up to the deepest layer, optionally bf16;
Adam with warm-up and linear decay; dead-feature counters in tokens; the token stream's position
in the checkpoint; ddp-shardable), with a transcoder per layer instead of an SAE per hook
(`circuitforge.dictionaries.transcoders`: sae-lens's BatchTopK training class with a skip
connection). Before the first step the input's mean and scale and the target's scale are
measured on a first slice; the input is centred and scaled, the target scaled, and `b_dec`
starts at the scaled target's mean. A separate class (not new arguments of `DictionaryTraining`)
so that the settings of existing dictionary runs stay what they are. `TranscoderExport` writes
circuit-tracer's transcoder-set format.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from circuitforge.dictionaries.activations import hook_activations
from circuitforge.dictionaries.centring import input_statistics
from circuitforge.dictionaries.tokens import trained_positions
from circuitforge.dictionaries.training import average_buffers, training_step
from circuitforge.dictionaries.transcoders import (
    TranscoderSpec,
    TranscoderStatistics,
    check_transcoder_specs,
    folded_tensors,
    training_transcoder,
)
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.numerics import check_finite, require_at_least_one
from lightning_modules.dictionary_training import DictionaryTraining
from lightning_modules.frozen_model_module import FrozenModelModule


class TranscoderTraining(DictionaryTraining):
    EXPERIMENT = "transcoder_training"

    def __init__(
        self,
        model: FrozenModelSpec,
        transcoders: list[TranscoderSpec],
        lr: float = 5e-4,
        warmup_steps: int = 100,
        decay_fraction: float = 0.2,
        bf16: bool = True,
        sae_bf16: bool = False,
        init_rows: int = 64,
        dead_window_tokens: int = 1_000_000,
        init_seed: int = 0,
        clip_grad_norm: float = 1.0,
    ) -> None:
        """Args:
        model: the frozen language model.
        transcoders: one entry per layer (`TranscoderSpec`: layer, width, k).
        lr: Adam's learning rate after `warmup_steps` of linear warm-up; it decays linearly to 0
            over the last `decay_fraction` of the run's steps.
        bf16: run the frozen model under `torch.autocast(bfloat16)`.
        sae_bf16: run the transcoders' forward and backward under bf16 autocast too.
        init_rows: rows of epoch 0's first batches on which means and scales are measured.
        dead_window_tokens: a feature that has not fired for this many training tokens is dead.
        init_seed: seed of the transcoders' initialisation.
        clip_grad_norm: each transcoder's gradient norm is clipped to this.
        """
        require_at_least_one(init_rows=init_rows, dead_window_tokens=dead_window_tokens)
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0 <= decay_fraction <= 1:
            raise ValueError(f"decay_fraction={decay_fraction} must be in [0, 1]")
        FrozenModelModule.__init__(self, model)
        frozen = self.frozen_model
        self.stop_at_layer = check_transcoder_specs(frozen, transcoders)
        self.specs = list(transcoders)  # the parent's methods read them by key()
        self.lr, self.warmup_steps, self.decay_fraction = lr, warmup_steps, decay_fraction
        self.bf16, self.sae_bf16, self.init_rows = bf16, sae_bf16, init_rows
        self.dead_window, self.clip, self.eval_every = dead_window_tokens, clip_grad_norm, 0
        d_model, name = frozen.cfg.d_model, str(frozen.cfg.model_name)
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            self.saes = torch.nn.ModuleDict(
                {s.key(): training_transcoder(s, d_model, name) for s in self.specs}
            )
        for s in self.specs:
            self.register_buffer(f"since_fired__{s.key()}", torch.zeros(s.width, dtype=torch.long))
            self.register_buffer(f"input_mean__{s.key()}", torch.zeros(d_model))
            self.register_buffer(f"scales__{s.key()}", torch.zeros(2, dtype=torch.float64))
        self.register_buffer("tokens_seen", torch.zeros((), dtype=torch.long))
        self._last_time: float | None = None

    def statistics(self, spec: TranscoderSpec) -> TranscoderStatistics:
        scales = getattr(self, f"scales__{spec.key()}")
        return TranscoderStatistics(
            input_mean=getattr(self, f"input_mean__{spec.key()}"),
            input_scale=float(scales[0]),
            output_mean=torch.zeros(0),
            output_scale=float(scales[1]),
        )

    def activations(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        positions = trained_positions(tokens, self.tokens_data().excluded)
        hooks = [h for s in self.specs for h in (s.input_hook, s.output_hook)]
        return hook_activations(
            self.frozen_model, tokens, hooks, self.stop_at_layer, positions, self.bf16
        )

    def on_train_start(self) -> None:
        """Centre and scale once (a resumed run has both from its checkpoint)."""
        if all(self.statistics(s).input_scale > 0 for s in self.specs):
            return
        rows = self.tokens_data().first_rows(self.init_rows).to(self.device)
        acts = self.activations(rows)
        for spec in self.specs:
            x, y = input_statistics(acts[spec.input_hook]), input_statistics(acts[spec.output_hook])
            getattr(self, f"input_mean__{spec.key()}").copy_(x.mean)
            getattr(self, f"scales__{spec.key()}").copy_(torch.tensor([x.scale, y.scale]))
            b_dec = self.saes[spec.key()].get_parameter("b_dec")
            with torch.no_grad():
                b_dec.copy_((y.mean * y.scale).to(b_dec.dtype))

    def inputs_and_targets(self, acts: dict[str, torch.Tensor], spec: TranscoderSpec):
        stats = self.statistics(spec)
        x = (acts[spec.input_hook] - stats.input_mean) * stats.input_scale
        return x, acts[spec.output_hook] * stats.output_scale

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        acts = self.activations(batch["tokens"])
        total = torch.zeros((), device=self.device)
        n_tokens = 0
        share = self.sum_across_processes()
        for spec in self.specs:
            x, y = self.inputs_and_targets(acts, spec)
            sae: Any = self.saes[spec.key()]  # sae-lens's class with `reading`
            with (
                torch.autocast(self.device.type, torch.bfloat16, enabled=self.sae_bf16),
                sae.reading(x),
            ):
                result = training_step(
                    sae, y, self.since_fired(spec), self.dead_window, self.global_step, share
                )
            n_tokens = result.tokens
            if share is not None:
                average_buffers(sae, share, self.trainer.world_size)
            check_finite(self.global_step, f"Lower lr (now {self.lr}).", loss=result.loss)
            total = total + result.loss
            for metric, value in result.metrics.items():
                self.log(f"{spec.key()}/{metric}", value)
        self.tokens_seen += n_tokens
        self.log("train/tokens", self.tokens_seen.double())
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        now = time.perf_counter()
        if self._last_time is not None:
            self.log("tok_s", n_tokens / (now - self._last_time), prog_bar=True)
        self._last_time = now
        return total

    def exported(self, spec: TranscoderSpec) -> dict[str, torch.Tensor]:
        """The transcoder on raw activations, in circuit-tracer's names (see `folded_tensors`)."""
        return folded_tensors(self.saes[spec.key()], self.statistics(spec))

    def scale(self, spec) -> float:  # the parent's SAE scale: a transcoder has two
        raise TypeError("a transcoder has an input and an output scale: use statistics(spec)")

    def heldout_metrics(self) -> dict:
        raise NotImplementedError("transcoders are evaluated by their export")

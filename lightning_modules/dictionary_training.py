"""DictionaryTraining: sae-lens training SAEs at several hooks, fed by one frozen forward.

`python train.py fit --config configs/dictionaries/gemma3_resid.yaml`. The trainable parameters
are the dictionaries (sae-lens TopK / BatchTopK / JumpReLU training SAEs, one per hook); each
batch runs the frozen model once, up to the deepest hook (`stop_at_layer`), optionally under
bf16 autocast, and every SAE trains on its hook's activations at the non-special tokens. The
loss, AuxK included, is sae-lens's (`circuitforge.dictionaries.training`). Before the first
step `b_dec` is set to the data mean and the input scale measured on a first slice of the
stream (`circuitforge.dictionaries.centring`); both, the dead-feature counters and the token
count are buffers, so a checkpoint carries them. `callbacks.DictionaryExport` writes the SAEs.
With `CachedActivationsDataModule` the activations come from a cache written once on disk
(`scripts/cache_activations.py`): no forward for training, the same statistics and steps.
Under ddp (`--trainer.strategy ddp --trainer.devices N`) each process reads its own slice of the
token stream (`ActivationTokensDataModule`), DDP averages the gradients, and the counters are
summed across processes, so every process holds the same dictionaries and counters.
"""

from __future__ import annotations

import math
import time

import torch

from circuitforge.demo_world.sae_training import special_token_ids
from circuitforge.dictionaries.activations import hook_activations
from circuitforge.dictionaries.centring import centre_decoder_bias, input_statistics
from circuitforge.dictionaries.evaluation import splice_totals
from circuitforge.dictionaries.export import inference_copy
from circuitforge.dictionaries.specs import DictionarySpec, check_specs, hook_width, training_sae
from circuitforge.dictionaries.tokens import trained_positions
from circuitforge.dictionaries.training import SumAcrossProcesses, average_buffers, training_step
from circuitforge.dictionaries.transcoders import TranscoderSpec
from circuitforge.model.placement import DevicePlan, place_model
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.numerics import check_finite, require_at_least_one
from datamodules.activation_tokens import ActivationTokensDataModule
from datamodules.cached_activations import CachedActivationsDataModule
from lightning_modules.frozen_model_module import FrozenModelModule
from lightning_modules.frozen_model_strategy import FrozenModelStrategy
from lightning_modules.trainer_access import datamodule_of


class DictionaryTraining(FrozenModelModule):
    tokens_seen: torch.Tensor  # a buffer (registered in __init__)
    EXPERIMENT = "dictionary_training"

    def __init__(
        self,
        model: FrozenModelSpec,
        dictionaries: list[DictionarySpec],
        lr: float = 5e-4,
        warmup_steps: int = 100,
        decay_fraction: float = 0.2,
        bf16: bool = True,
        sae_bf16: bool = False,
        init_rows: int = 64,
        dead_window_tokens: int = 1_000_000,
        init_seed: int = 0,
        clip_grad_norm: float = 1.0,
        eval_every_n_steps: int = 0,
    ) -> None:
        """Args:
        model: the frozen language model.
        dictionaries: one entry per hook point (`DictionarySpec`: hook, width, k, architecture).
        lr: Adam's learning rate after `warmup_steps` of linear warm-up; it decays linearly to 0
            over the last `decay_fraction` of the run's steps.
        bf16: run the frozen model under `torch.autocast(bfloat16)`.
        sae_bf16: run the SAEs' forward and backward under `torch.autocast(bfloat16)` too
            (parameters, Adam and the input statistics stay fp32).
        init_rows: rows of the first batches of epoch 0 on which the data mean (b_dec's start)
            and the input scale are measured.
        dead_window_tokens: a feature that has not fired for this many training tokens is dead
            (counted for the dead fraction and trained by AuxK).
        init_seed: seed of the SAEs' initialisation.
        clip_grad_norm: each SAE's gradient norm is clipped to this (as sae-lens does).
        eval_every_n_steps: every this many steps, the spliced loss change, explained variance,
            L0 and dead fraction on the held-out rows (0: never).
        """
        require_at_least_one(init_rows=init_rows, dead_window_tokens=dead_window_tokens)
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0 <= decay_fraction <= 1:
            raise ValueError(f"decay_fraction={decay_fraction} must be in [0, 1]")
        super().__init__(model)
        frozen = self.frozen_model
        self.stop_at_layer = check_specs(frozen, dictionaries)
        self.specs = list(dictionaries)
        self.lr, self.warmup_steps, self.decay_fraction = lr, warmup_steps, decay_fraction
        self.bf16, self.sae_bf16, self.init_rows = bf16, sae_bf16, init_rows
        self.dead_window = dead_window_tokens
        self.clip, self.eval_every = clip_grad_norm, eval_every_n_steps
        name = str(frozen.cfg.model_name)
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            self.saes = torch.nn.ModuleDict(
                {s.key(): training_sae(s, hook_width(frozen, s.hook), name) for s in self.specs}
            )
        for s in self.specs:
            self.register_buffer(f"since_fired__{s.key()}", torch.zeros(s.width, dtype=torch.long))
            self.register_buffer(f"scale__{s.key()}", torch.zeros((), dtype=torch.float64))
        self.register_buffer("tokens_seen", torch.zeros((), dtype=torch.long))
        self._last_time: float | None = None
        self.centre = True  # b_dec starts at the data mean (`DictionaryPilot` can turn it off)

    def since_fired(self, spec: DictionarySpec | TranscoderSpec) -> torch.Tensor:
        return getattr(self, f"since_fired__{spec.key()}")

    def scale(self, spec: DictionarySpec) -> float:
        return float(getattr(self, f"scale__{spec.key()}"))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "bind_tokenizer"):
            raise ValueError("DictionaryTraining needs data: ActivationTokensDataModule")
        datamodule.bind_tokenizer(self.frozen_model)
        if isinstance(datamodule, CachedActivationsDataModule):
            datamodule.check_serves([s.hook for s in self.specs], self.bf16)
        if not isinstance(self.trainer.strategy, FrozenModelStrategy):
            # ddp and friends: each process holds the whole frozen model on its own device.
            device = self.trainer.strategy.root_device
            place_model(
                self.frozen_model, DevicePlan.split(self.frozen_model.cfg.n_layers, [device])
            )

    def sum_across_processes(self) -> SumAcrossProcesses | None:
        """Under ddp: an all-reduce (sum) that keeps the dead-feature counters and the token
        count equal in every process; None in a single process."""
        if self.trainer.world_size == 1:
            return None
        strategy = self.trainer.strategy
        return lambda tensor: strategy.reduce(tensor, reduce_op="sum")

    def activations(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        positions = trained_positions(tokens, self.tokens_data().excluded)
        hooks = [s.hook for s in self.specs]
        return hook_activations(
            self.frozen_model, tokens, hooks, self.stop_at_layer, positions, self.bf16
        )

    def tokens_data(self) -> ActivationTokensDataModule:
        return datamodule_of(self.trainer, ActivationTokensDataModule, self)

    def on_train_start(self) -> None:
        """Centre and scale once (a resumed run has both from its checkpoint)."""
        if all(self.scale(s) > 0 for s in self.specs):
            return
        data = self.tokens_data()
        if isinstance(data, CachedActivationsDataModule):
            acts = {h: a.to(self.device) for h, a in data.first_activations(self.init_rows).items()}
        else:
            acts = self.activations(data.first_rows(self.init_rows).to(self.device))
        for spec in self.specs:
            stats = input_statistics(acts[spec.hook])
            getattr(self, f"scale__{spec.key()}").fill_(stats.scale)
            if self.centre:
                centre_decoder_bias(self.saes[spec.key()], stats)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # a cached run's batches carry their activations (CachedActivationsDataModule)
        acts = batch["activations"] if "activations" in batch else self.activations(batch["tokens"])
        total = torch.zeros((), device=self.device)
        n_tokens = 0
        share = self.sum_across_processes()
        for spec in self.specs:
            x = acts[spec.hook] * self.scale(spec)
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.sae_bf16):
                result = training_step(
                    self.saes[spec.key()],
                    x,
                    self.since_fired(spec),
                    self.dead_window,
                    self.global_step,
                    share,
                )
            n_tokens = result.tokens
            if share is not None:
                average_buffers(self.saes[spec.key()], share, self.trainer.world_size)
            check_finite(self.global_step, f"Lower lr (now {self.lr}).", loss=result.loss)
            total = total + result.loss
            for metric, value in result.metrics.items():
                self.log(f"{spec.folder_name()}/{metric}", value)
        self.tokens_seen += n_tokens
        self.log("train/tokens", self.tokens_seen.double())
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        now = time.perf_counter()
        if self._last_time is not None:
            self.log("tok_s", n_tokens / (now - self._last_time), prog_bar=True)
        self._last_time = now
        return total

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.eval_every and self.global_step % self.eval_every == 0:
            for spec, metrics in self.heldout_metrics().items():
                for metric, value in metrics.items():
                    self.log(f"heldout/{spec.folder_name()}/{metric}", float(value))
            self._last_time = None  # the evaluation's time is not training's

    @torch.no_grad()
    def heldout_metrics(self) -> dict[DictionarySpec, dict]:
        """`evaluate_sae`'s metrics (explained variance, L0, dead fraction, spliced loss change,
        KL) of each dictionary, input scale folded in, on the held-out rows (fp32 forwards):
        `splice_totals`, one clean forward for all, 2 rows a forward (Gemma's logits)."""
        heldout = self.tokens_data().heldout
        assert heldout is not None  # bind_tokenizer made it
        model = self.frozen_model
        saes = {
            spec.key(): (inference_copy(self.saes[spec.key()], self.scale(spec)).eval(), spec.hook)
            for spec in self.specs
        }
        pad = getattr(model.tokenizer, "pad_token_id", None)
        rows = heldout.to(self.device)
        totals = splice_totals(model, saes, rows, special_token_ids(model), pad, chunk_rows=2)
        return {spec: totals[spec.key()].metrics() for spec in self.specs}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, **kwargs) -> None:
        for sae in self.saes.values():
            torch.nn.utils.clip_grad_norm_(sae.parameters(), self.clip)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.saes.parameters(), lr=self.lr, betas=(0.9, 0.999))
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup, decay = self.warmup_steps, math.ceil(total * self.decay_fraction)

        def schedule(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            if decay and step >= total - decay:
                return max(0.0, (total - step) / decay)
            return 1.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

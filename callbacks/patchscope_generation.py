"""PatchscopeGeneration: decode X into words by injecting it into a target prompt.

`results/patchscope_generation.json`: per-vector fields are lists in the order of `vectors`.
"""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from callbacks.result_callback import ResultCallback
from circuitforge.numerics import require_at_least_one
from circuitforge.patchscope.generation import patchscope_decode
from circuitforge.patchscope.prompt import PlaceholderPrompt, locate_placeholder
from circuitforge.results import per_vector
from lightning_modules.residual_vector import ResidualVectorModule
from lightning_modules.trainer_access import module_of


class PatchscopeGeneration(ResultCallback):
    result_name = "patchscope_generation"

    def __init__(
        self,
        target_prompt: str = "A detailed description of x is that",
        placeholder: str = "x",
        alpha: float = 1.5,
        new_tokens: int = 20,
        every_n_epochs: int = 1,
    ) -> None:
        """Args:
        target_prompt: the prompt X is injected into, at its placeholder, at prefill.
        alpha: contrast strength: greedy on (1+alpha)*logits_X - alpha*logits_baseline.
        new_tokens: tokens to generate.
        every_n_epochs: decode every n epochs (and always after the last one).
        """
        super().__init__()
        if not math.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number, got {alpha}")
        require_at_least_one(new_tokens=new_tokens, every_n_epochs=every_n_epochs)
        self.target_prompt, self.placeholder = target_prompt, placeholder
        self.alpha, self.new_tokens, self.every_n_epochs = alpha, new_tokens, every_n_epochs
        self.prompt: PlaceholderPrompt | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        module = module_of(pl_module, ResidualVectorModule, self)
        self.prompt = locate_placeholder(module.frozen_model, self.target_prompt, self.placeholder)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if epoch % self.every_n_epochs and not last:
            return
        self.report(trainer, module_of(pl_module, ResidualVectorModule, self))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # `validate`: X as it is
            self.report(trainer, module_of(pl_module, ResidualVectorModule, self))

    def report(self, trainer: L.Trainer, module: ResidualVectorModule) -> None:
        assert self.prompt is not None
        decoded = patchscope_decode(
            module.frozen_model,
            self.prompt,
            module.source_layer,
            module.X.detach(),
            module.baseline,
            module.target_layer,
            module.vector_neurons,
            self.alpha,
            self.new_tokens,
        )
        names = module.vector_names()
        self.write(
            trainer,
            {
                "target_prompt": self.target_prompt,
                "alpha": self.alpha,
                **per_vector(
                    names,
                    contrastive_text=decoded.contrastive_text,
                    plain_text=decoded.plain_text,
                    prefill_activation=decoded.prefill_activation,
                ),
            },
        )
        writer = self.tensorboard(trainer)
        if writer is not None:
            for i, name in enumerate(names):
                text = (
                    f"**prompt** {self.target_prompt}\n\n"
                    f"**contrastive** (a={self.alpha}) {decoded.contrastive_text[i]}\n\n"
                    f"**plain** {decoded.plain_text[i]}\n\n"
                    f"**target neuron at prefill** {decoded.prefill_activation[i]:.4f}"
                )
                writer.add_text(f"patchscope/{name}", text, trainer.global_step)

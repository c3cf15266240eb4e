"""LanguageModelPretraining: trains the demo world's small Gemma-2-style HookedTransformer.

The one LightningModule whose parameters are a language model: it makes the frozen model that
every other run loads (`assets/demo/model`). The vocabulary comes from the datamodule's
tokenizer, so the model is built in `configure_model`, after the datamodule's `setup`.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer

from circuitforge.demo_world.architecture import DemoArchitecture
from circuitforge.model.tokenizer import token_id
from circuitforge.numerics import check_finite
from datamodules.demo_corpus import DemoCorpusDataModule
from lightning_modules.trainer_access import datamodule_of


class LanguageModelPretraining(L.LightningModule):
    def __init__(
        self,
        architecture: DemoArchitecture | None = None,
        init_seed: int = 0,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        final_lr_fraction: float = 0.1,
        tie_embeddings: bool = True,
    ) -> None:
        """Args:
        architecture: the model's sizes (default `DemoArchitecture()`: 4 layers, d_model 128).
        init_seed: seed of the weight initialisation.
        lr: AdamW peak learning rate, after `warmup_steps` of linear warm-up, then a cosine
            decay to `final_lr_fraction * lr` at the last step.
        weight_decay: AdamW weight decay (matrices only; not norms).
        tie_embeddings: the unembedding is the transposed embedding while training, as in
            Gemma-2. Names that IOI never shows as answers still get an unembedding their
            embedding trained, so copying them generalises. The exported model holds the copy.
        """
        super().__init__()
        self.save_hyperparameters()
        self.architecture = architecture or DemoArchitecture()
        self.init_seed, self.lr, self.weight_decay = init_seed, lr, weight_decay
        self.warmup_steps, self.final_lr_fraction = warmup_steps, final_lr_fraction
        self.tie_embeddings = tie_embeddings
        self.model: HookedTransformer | None = None

    def configure_model(self) -> None:
        if self.model is not None:
            return
        datamodule = datamodule_of(self.trainer, DemoCorpusDataModule, self)
        tokenizer = datamodule.loaded_tokenizer()
        cfg = self.architecture.config(datamodule.d_vocab, seed=self.init_seed)
        self.model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
        self.pad_id = token_id(tokenizer, "pad")
        if self.tie_embeddings:
            del self.model.unembed.W_U  # a view of W_E from now on (`tied_unembedding`)

    @property
    def language_model(self) -> HookedTransformer:
        """The model being trained (built in `configure_model`)."""
        if self.model is None:
            raise RuntimeError("the model is built in configure_model, which has not run yet")
        return self.model

    def tied_unembedding(self) -> None:
        """Point the unembedding at the embedding (before each forward: W_E changes)."""
        if self.tie_embeddings:
            model = self.language_model
            model.unembed.W_U = model.embed.W_E.T

    def export_model(self) -> HookedTransformer:
        """The model with an ordinary unembedding parameter (a copy of W_E.T when tied)."""
        model = self.language_model
        if self.tie_embeddings:
            W_U = model.embed.W_E.detach().T.clone()
            del model.unembed.W_U
            model.unembed.W_U = torch.nn.Parameter(W_U)
        return model

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy; `<pad>` targets are ignored."""
        self.tied_unembedding()
        logits = self.language_model(tokens, return_type="logits")[:, :-1]
        return F.cross_entropy(
            logits.flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=self.pad_id
        )

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        check_finite(self.global_step, f"Lower lr (now {self.lr}).", loss=loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val/loss", self.loss(batch), prog_bar=True)

    def configure_optimizers(self):
        parameters = list(self.language_model.named_parameters())
        decay = [p for n, p in parameters if p.ndim >= 2]
        no_decay = [p for n, p in parameters if p.ndim < 2]
        groups = [
            {"params": decay, "weight_decay": self.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.lr, betas=(0.9, 0.98))
        warmup, final = self.warmup_steps, self.final_lr_fraction
        total = max(int(self.trainer.estimated_stepping_batches), warmup + 1)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / (total - warmup)
            cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
            return final + (1 - final) * cosine

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

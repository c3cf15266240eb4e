"""FrozenModelAnalysis: the shared shell of the test runs that train nothing (activation patching,
direct logit attribution, logit lens, feature circuits).

Subclasses implement `analyse(batch)` (one batch of prompt pairs) and `finish()`, whose return
value becomes `self.result` for the run's callback (for `AnalysisExport`: an `AnalysisResult`;
for `FeatureCircuitExport`: a `FeatureCircuitResult`).
"""

from __future__ import annotations

import torch

from circuitforge.batches import PairBatch
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.model.tokenizer import str_tokens, to_text
from circuitforge.tasks.prompt_pairs import PairTensors
from datamodules.prompt_pairs import PromptPairDataModule
from lightning_modules.frozen_model_module import FrozenModelModule
from lightning_modules.trainer_access import datamodule_of


class FrozenModelAnalysis(FrozenModelModule):
    EXPERIMENT = "analysis"

    def __init__(self, model: FrozenModelSpec) -> None:
        super().__init__(model)
        self.result: object | None = None  # what `finish` returned

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            raise ValueError(
                f"{type(self).__name__} runs in one process (its sums are not gathered across "
                "processes); to use two GPUs, split the model with FrozenModelStrategy "
                "(strategy.init_args.devices: [cuda:0, cuda:1])"
            )
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "bind_model"):
            raise ValueError(f"{type(self).__name__} needs data: PromptPairDataModule")
        datamodule.bind_model(self.frozen_model)

    @property
    def pairs(self) -> PairTensors:
        """All the pairs the run covers (the datamodule's training pairs)."""
        pairs = datamodule_of(self.trainer, PromptPairDataModule, self).train_pairs
        if pairs is None:
            raise RuntimeError("the prompt pairs are tokenised in setup (bind_model)")
        return pairs

    def test_step(self, batch: PairBatch, batch_idx: int) -> None:
        # Lightning runs test steps under torch.inference_mode; attribution patching needs
        # gradients, and inference tensors cannot enter autograd: leave it, with copies.
        with torch.inference_mode(False):
            self.analyse(batch.clone())

    def on_test_epoch_end(self) -> None:
        with torch.inference_mode(False):
            self.result = self.finish()

    def analyse(self, batch: PairBatch) -> None:
        raise NotImplementedError

    def finish(self) -> object:
        raise NotImplementedError

    def str_tokens(self, tokens: torch.Tensor, read: torch.Tensor) -> list[list[str]]:
        """Each prompt's tokens as text, up to its read position."""
        return [str_tokens(self.frozen_model, row) for row in _prompts(tokens, read)]

    def texts(self, tokens: torch.Tensor, read: torch.Tensor) -> list[str]:
        """Each prompt decoded, without its BOS."""
        model = self.frozen_model
        skip = int(model.cfg.default_prepend_bos)
        return [to_text(model, row[skip:]) for row in _prompts(tokens, read)]


def _prompts(tokens: torch.Tensor, read: torch.Tensor) -> list[torch.Tensor]:
    ends = read.long().cumsum(1).argmax(1) + 1  # one past the last read position
    return [row[:end] for row, end in zip(tokens, ends.tolist())]

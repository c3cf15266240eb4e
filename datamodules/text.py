"""TextDataModule: a corpus, the residual baseline computed over it, and the step schedule.

The residual-vector optimisation has no data to iterate over: each step runs the same dummy
prompt. The train loader therefore yields `steps_per_epoch` step indices, so an epoch is a fixed
number of optimisation steps, after which the callbacks report and a checkpoint is written.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformer_lens import HookedTransformer

from circuitforge.data.baseline import BaselineCache, ResidualBaseline, compute_baseline
from circuitforge.data.texts import content_digest, load_texts
from circuitforge.numerics import require_at_least_one


class TextDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: str = "NeelNanda/pile-10k",
        n_documents: int = 100,
        window: int = 32,
        prepend_bos: bool = False,
        text_field: str = "text",
        batch_size: int = 8,
        steps_per_epoch: int = 10,
        cache_dir: str = "~/.cache/circuitforge",
    ) -> None:
        """Args:
        source: a Hugging Face dataset name, or a local .txt (a document per line) / .jsonl file.
        n_documents: the baseline averages over the first `n_documents` documents.
        window: each document is cut to its last `window` tokens, left-padded.
        prepend_bos: put BOS in front of each window (the seed study did not: its windows were
            the last 32 tokens of BOS-prefixed documents, so long documents lost their BOS).
        text_field: the text column of the dataset or .jsonl file.
        batch_size: documents per forward pass while computing the baseline.
        steps_per_epoch: optimisation steps per epoch.
        cache_dir: where baselines are cached (per model, layer, corpus content, window).
        """
        super().__init__()
        self.save_hyperparameters()
        require_at_least_one(
            n_documents=n_documents,
            window=window,
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
        )
        self.source, self.n_documents, self.window = source, n_documents, window
        self.prepend_bos, self.text_field, self.batch_size = prepend_bos, text_field, batch_size
        self.steps_per_epoch = steps_per_epoch
        self.cache = BaselineCache(cache_dir)

    def baseline_key(self, model_identity: str, layer: int) -> dict:
        return {
            "model": model_identity,
            "layer": layer,
            "source": self.source,
            "source_sha256": content_digest(self.source),  # an edited corpus is another corpus
            "n_documents": self.n_documents,
            "window": self.window,
            "prepend_bos": self.prepend_bos,
            "text_field": self.text_field,
        }

    def residual_baseline(
        self, model: HookedTransformer, model_identity: str, layer: int
    ) -> ResidualBaseline:
        """The baseline at `blocks.{layer}.hook_resid_pre`, from the cache or computed once."""
        key = self.baseline_key(model_identity, layer)
        cached = self.cache.load(key)
        if cached is not None:
            return cached
        texts = load_texts(self.source, self.n_documents, self.text_field)
        baseline = compute_baseline(
            model, texts, layer, self.window, self.prepend_bos, self.batch_size
        )
        self.cache.save(key, baseline)
        return baseline

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.arange(self.steps_per_epoch), batch_size=1, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        """One evaluation of the vectors as they are (`validate`, and after each epoch)."""
        return DataLoader(torch.arange(1), batch_size=1, shuffle=False)

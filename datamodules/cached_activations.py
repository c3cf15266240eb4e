"""CachedActivationsDataModule: dictionary training on activations cached once on disk.

The token stream of `ActivationTokensDataModule` (the same corpus, context, seed, held-out split
and special-token exclusion), cut to the rows a cache holds: `scripts/cache_activations.py`
writes the first rows of epoch 0's order with each hook's activation (bf16, memory-mapped;
`circuitforge.dictionaries.activation_cache`). Epoch 0 reads them in that order (the streaming
run's first batches, and the same centring slice); each later epoch in an order fixed by
(seed, epoch). Each batch carries `activations` (hook -> [token, d] at the trained
positions), so `DictionaryTraining` runs no forward for training; the held-out evaluation still
runs the model on the held-out rows. The cache is refused unless its tokens are exactly this
stream's first rows and its model is this run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from circuitforge.dictionaries.activation_cache import ActivationCache, read_activation_cache
from circuitforge.dictionaries.tokens import trained_positions
from datamodules.activation_tokens import ActivationTokensDataModule, TokenWindows


class CachedWindows(TokenWindows):
    """`TokenWindows` whose batches also carry the cached activations of their rows. Epoch 0
    reads the rows in the order they were cached (the streaming run's epoch-0 order, so its
    batches are the streaming run's); later epochs in an order fixed by (seed, epoch)."""

    def __init__(self, cache: ActivationCache, excluded: list[int], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cache, self.excluded = cache, excluded

    def order(self, epoch: int) -> torch.Tensor:
        return torch.arange(self.rows.shape[0]) if epoch == 0 else super().order(epoch)

    def batch(self, picked: torch.Tensor, epoch: int, index: int) -> dict[str, Any]:
        out = super().batch(picked, epoch, index)
        out["activations"] = cached_activations(self.cache, picked, self.excluded)
        return out


def cached_activations(
    cache: ActivationCache, picked: torch.Tensor, excluded: list[int]
) -> dict[str, torch.Tensor]:
    """hook -> the cached activations of rows `picked` at their trained positions."""
    positions = trained_positions(cache.tokens[picked], excluded)
    return {hook: cache.rows(hook, picked)[positions] for hook in cache.arrays}


class CachedActivationsDataModule(ActivationTokensDataModule):
    def __init__(
        self,
        cache: str,
        corpus: str = "assets/english_corpus/corpus.jsonl.gz",
        context: int = 128,
        batch_size: int = 16,
        seed: int = 0,
        heldout_fraction: float = 0.1,
        n_documents: int | None = None,
        heldout_rows: int = 32,
    ) -> None:
        """Args:
        cache: the folder `scripts/cache_activations.py` wrote for this stream; its rows are an
            epoch (repeat them with `trainer.max_epochs`).
        corpus, context, batch_size, seed, heldout_fraction, n_documents, heldout_rows: as
            `ActivationTokensDataModule`'s; they must describe the stream the cache was cut from.
        """
        super().__init__(
            corpus=corpus,
            context=context,
            batch_size=batch_size,
            seed=seed,
            heldout_fraction=heldout_fraction,
            n_documents=n_documents,
            heldout_rows=heldout_rows,
        )
        self.cache = cache
        self.activation_cache: ActivationCache | None = None

    def bind_tokenizer(self, model) -> None:
        """Tokenise the corpus as the streaming run does, then keep only the cached rows
        (refused unless they are this stream's first rows, from this model)."""
        if self.activation_cache is not None:
            return
        super().bind_tokenizer(model)
        cache = read_activation_cache(Path(self.cache))
        name = str(model.cfg.model_name)
        if cache.meta["model_name"] != name:
            raise ValueError(
                f"activation cache {self.cache} is of model {cache.meta['model_name']!r}, "
                f"this run's is {name!r}"
            )
        n_rows = cache.meta["rows"]
        assert self.train_rows is not None
        if cache.meta["context"] != self.context or n_rows > self.train_rows.shape[0]:
            raise ValueError(
                f"activation cache {self.cache} holds {n_rows} rows of {cache.meta['context']} "
                f"tokens; this stream has {self.train_rows.shape[0]} rows of {self.context}"
            )
        if not torch.equal(cache.tokens, self.first_rows(n_rows)):
            raise ValueError(
                f"activation cache {self.cache}: its tokens are not the first rows of this "
                f"run's training stream (data.corpus / seed / heldout_fraction / n_documents "
                f"differ from the cache's {cache.meta.get('corpus')!r}, seed "
                f"{cache.meta.get('seed')})"
            )
        if n_rows < self.batch_size:
            raise ValueError(
                f"activation cache {self.cache} holds {n_rows} rows, fewer than one batch "
                f"(data.batch_size={self.batch_size})"
            )
        self.train_rows, self.n_rows = cache.tokens, n_rows
        self.activation_cache = cache

    def check_serves(self, hooks: list[str], bf16: bool) -> None:
        """Refuse a run whose hooks the cache lacks or whose model precision differs."""
        cache = self.activation_cache
        assert cache is not None  # bind_tokenizer opened it
        missing = [h for h in hooks if h not in cache.arrays]
        if missing:
            raise ValueError(
                f"activation cache {self.cache} holds {sorted(cache.arrays)}, not {missing}"
            )
        if bool(cache.meta["bf16"]) != bf16:
            raise ValueError(
                f"activation cache {self.cache} was written with the model's bf16="
                f"{cache.meta['bf16']}, this run has model.bf16={bf16}"
            )

    def first_rows(self, n: int) -> torch.Tensor:
        """The first `n` rows of epoch 0 (the streaming run's first rows, so the same slice)."""
        if self.activation_cache is None:  # while bind_tokenizer compares the cache's rows
            return super().first_rows(n)
        assert self.train_rows is not None
        return self.train_rows[:n]

    def first_activations(self, n: int) -> dict[str, torch.Tensor]:
        """hook -> the cached activations of `first_rows(n)` (the centring's slice)."""
        assert self.activation_cache is not None
        picked = torch.arange(min(n, self.n_rows))
        return cached_activations(self.activation_cache, picked, self.excluded)

    def new_loader(self) -> TokenWindows:
        assert self.activation_cache is not None and self.train_rows is not None
        return CachedWindows(
            self.activation_cache,
            self.excluded,
            self.train_rows,
            self.n_rows,
            self.batch_size,
            self.seed,
            self._current_epoch,
            rank=self._trainer_int("global_rank", 0),
            processes=self._processes(),
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cache": self.cache}

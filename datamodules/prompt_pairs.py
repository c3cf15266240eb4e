"""Prompt pairs (clean, corrupt, answer, wrong answer) for edge-circuit discovery.

Tasks: `ioi` (Wang et al. templates and names, ABC corruption; for GPT-2), `greater_than`
(Hanna et al.; for GPT-2), `demo_ioi` and `demo_greater_than` (the embedded demo model's own
tasks), `jsonl` (a file of `{clean, corrupt, answer, wrong_answer}`, `path`), `tracr` (a
converted tracr program folder, `path`). The pairs are tokenised once the module hands over
the frozen model (`bind_model`); validation pairs are drawn with another seed (or, for JSONL,
are the file's last `n_validation` lines). Loaders yield `PairBatch`es.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from circuitforge.batches import PairBatch, pair_batch
from circuitforge.numerics import require_at_least_one
from circuitforge.tasks.demo_tasks import demo_greater_than_pairs, demo_ioi_pairs, one_template
from circuitforge.tasks.greater_than import greater_than_pairs
from circuitforge.tasks.greater_than_digits import decade_pairs
from circuitforge.tasks.ioi import WANG_TEMPLATES, ioi_pairs
from circuitforge.tasks.prompt_pairs import PairTensors, read_jsonl, tokenize_pairs
from circuitforge.tasks.tracr_task import length_batches, tracr_pairs

GENERATED = {
    "ioi": ioi_pairs,
    "greater_than": greater_than_pairs,
    "greater_than_decade": decade_pairs,  # Gemma's digit-split years: the decade digit
    "demo_ioi": demo_ioi_pairs,
    "demo_greater_than": demo_greater_than_pairs,
}
TASKS = (*GENERATED, "jsonl", "tracr")


class _Rows(Dataset):
    """Row numbers: the batch sampler picks them, `pair_batch` gathers their pairs."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class EpochSeededBatches:
    """Batches shuffled by (seed, epoch), so a resumed run sees the order an uninterrupted one
    would (Lightning calls `set_epoch`). tracr rows are grouped by length: bidirectional
    attention means a batch must not mix lengths."""

    def __init__(self, pairs: PairTensors, size: int, by_length: bool, shuffle: bool, seed: int):
        self.pairs, self.size, self.by_length = pairs, size, by_length
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        seed = self.seed + self.epoch if self.shuffle else None
        if self.by_length:
            return length_batches(self.pairs.read, self.size, seed)
        n = len(self.pairs)
        order = torch.arange(n)
        if seed is not None:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return [order[i : i + self.size].tolist() for i in range(0, n, self.size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class PromptPairDataModule(L.LightningDataModule):
    def __init__(
        self,
        task: str = "demo_ioi",
        n_train: int = 64,
        n_validation: int = 64,
        batch_size: int = 16,
        seed: int = 0,
        path: str | None = None,
        tracr_length: int | None = None,
        template: int | None = None,
    ) -> None:
        """Args:
        task: one of ioi, greater_than, demo_ioi, demo_greater_than, jsonl, tracr.
        n_train: training pairs (generated tasks and tracr).
        n_validation: pairs the discrete circuit is evaluated on (never trained on).
        batch_size: pairs per step.
        seed: seed of the generated pairs (validation uses seed + 1).
        path: the JSONL file, or the tracr fixture folder.
        tracr_length: input length of tracr pairs (default: random, 1 to max_seq_len).
        template: IOI tasks only: use this one template (its index), so that every prompt has
            the same shape and a token position means the same slot in all of them.
        """
        super().__init__()
        require_at_least_one(n_train=n_train, n_validation=n_validation, batch_size=batch_size)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task in ("jsonl", "tracr") and path is None:
            raise ValueError(f"task {task!r} needs a path")
        if template is not None and task not in ("ioi", "demo_ioi"):
            raise ValueError(f"template is for the IOI tasks, not {task!r}")
        self.template = template
        self.task, self.n_train, self.n_validation = task, n_train, n_validation
        self.batch_size, self.seed, self.path, self.tracr_length = (
            batch_size,
            seed,
            path,
            tracr_length,
        )
        self.train_pairs: PairTensors | None = None
        self.validation_pairs: PairTensors | None = None

    def bind_model(self, model) -> None:
        """Tokenise the pairs with the frozen model's tokenizer."""
        if self.train_pairs is not None:
            return
        if self.task == "tracr":
            folder = self._path()
            self.train_pairs = tracr_pairs(folder, self.n_train, self.seed, self.tracr_length)
            self.validation_pairs = tracr_pairs(
                folder, self.n_validation, self.seed + 1, self.tracr_length
            )
            return
        if model.tokenizer is None:
            raise ValueError(f"task {self.task!r} needs a model with a tokenizer")
        if self.task == "jsonl":
            pairs = read_jsonl(self._path())
            if len(pairs) <= self.n_validation:
                raise ValueError(
                    f"{self.path} has {len(pairs)} pairs; n_validation={self.n_validation} "
                    "would leave none to train on"
                )
            cut = len(pairs) - self.n_validation
            train, validation = pairs[:cut], pairs[cut:]
        else:
            train = self._generate(self.n_train, self.seed)
            validation = self._generate(self.n_validation, self.seed + 1)
        self.train_pairs = tokenize_pairs(model, train)
        self.validation_pairs = tokenize_pairs(model, validation)

    def _path(self) -> str:
        if self.path is None:  # refused in __init__ for the tasks that read one
            raise ValueError(f"task {self.task!r} needs a path")
        return self.path

    def _generate(self, n: int, seed: int) -> list:
        if self.template is None:
            return GENERATED[self.task](n, seed)
        if self.task == "ioi":
            return ioi_pairs(n, seed, one_template(WANG_TEMPLATES, self.template))
        return demo_ioi_pairs(n, seed, template=self.template)

    def _loader(self, pairs: PairTensors | None, shuffle: bool) -> DataLoader:
        if pairs is None:
            raise RuntimeError("call bind_model(model) first (the module does it in setup)")
        batches = EpochSeededBatches(
            pairs, self.batch_size, self.task == "tracr", shuffle, self.seed
        )
        return DataLoader(
            _Rows(len(pairs)), batch_sampler=batches, collate_fn=partial(pair_batch, pairs)
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_pairs, shuffle=True)

    def test_dataloader(self) -> DataLoader:
        """The training pairs, in order (a feature circuit is found on them)."""
        return self._loader(self.train_pairs, shuffle=False)

    def validation_batches(self) -> list[PairBatch]:
        return list(self._loader(self.validation_pairs, shuffle=False))

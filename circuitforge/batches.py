"""The typed batches loaders yield and modules and core functions read (no Lightning here).

Each is a frozen dataclass with `to(device)`: Lightning's `move_data_to_device` moves any
object with a `to` method as a whole, whereas it refuses a frozen dataclass it would have to
rebuild field by field (`apply_to_collection`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from torch import Tensor

from circuitforge.tasks.prompt_pairs import PairTensors


class TensorBatch:
    """`to(device)` and `clone()` for a frozen dataclass of tensors: copies, never in place."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Self:
        assert dataclasses.is_dataclass(self)
        moved = {
            f.name: value.to(device, non_blocking=non_blocking)
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **moved)

    def clone(self) -> Self:
        """A copy with every tensor field cloned (e.g. normal tensors from inference ones)."""
        assert dataclasses.is_dataclass(self)
        cloned = {
            f.name: value.clone()
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **cloned)


@dataclass(frozen=True)
class PairBatch(TensorBatch):
    """Prompt pairs of one batch (see `PairTensors`), right-padded to the batch's longest
    prompt; `index` is each pair's row in its split, so a module can cache per-pair values."""

    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    read: Bool[Tensor, "batch pos"]
    answer: Int[Tensor, " batch"]  # -1: the task has no answer token (tracr)
    wrong_answer: Int[Tensor, " batch"]
    index: Int[Tensor, " batch"]

    def __len__(self) -> int:
        return self.clean.shape[0]

    def padded_to(self, width: int) -> PairBatch:
        """The prompts right-padded (with 0, never read) to `width` positions."""
        extra = width - self.clean.shape[1]
        if extra < 0:
            raise ValueError(f"a batch of {self.clean.shape[1]} positions cannot pad to {width}")
        return dataclasses.replace(
            self,
            clean=F.pad(self.clean, (0, extra)),
            corrupt=F.pad(self.corrupt, (0, extra)),
            read=F.pad(self.read, (0, extra)),
        )

    def repeated(self, times: int) -> PairBatch:
        """The batch `times` times over, copy after copy (row i of copy c is row c * n + i)."""
        return PairBatch(
            *(t.repeat(times, *([1] * (t.dim() - 1))) for t in self._tensors()),
        )

    def _tensors(self) -> tuple[Tensor, ...]:
        return (self.clean, self.corrupt, self.read, self.answer, self.wrong_answer, self.index)


def pair_batch(pairs: PairTensors, rows: Sequence[int]) -> PairBatch:
    """Rows `rows` of `pairs`, cut to the positions some prompt of them reads."""
    index = torch.tensor(list(rows), dtype=torch.long)
    read = pairs.read[index]
    width = int(read.any(0).nonzero().max()) + 1
    return PairBatch(
        clean=pairs.clean[index, :width],
        corrupt=pairs.corrupt[index, :width],
        read=read[:, :width],
        answer=pairs.answer[index],
        wrong_answer=pairs.wrong_answer[index],
        index=index,
    )


def all_pairs(pairs: PairTensors) -> PairBatch:
    """Every pair of `pairs` as one batch, at the full width."""
    return PairBatch(
        clean=pairs.clean,
        corrupt=pairs.corrupt,
        read=pairs.read,
        answer=pairs.answer,
        wrong_answer=pairs.wrong_answer,
        index=torch.arange(len(pairs)),
    )

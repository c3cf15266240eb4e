"""`Items`: a sequence as a map-style `Dataset` (what DataLoader's type asks for)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from torch.utils.data import Dataset

Item = TypeVar("Item")


class Items(Dataset, Generic[Item]):
    def __init__(self, items: Sequence[Item]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

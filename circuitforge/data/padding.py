"""Right padding of token rows: causal attention never sees what comes after a row's end."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor


def right_padded(rows: Sequence[Sequence[int]], pad: int) -> Int[Tensor, "row pos"]:
    """Rows of token ids padded with `pad` to the longest one."""
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long)

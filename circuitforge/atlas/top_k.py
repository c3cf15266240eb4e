"""Exact streaming top-k per unit, mergeable across batches, shards and processes.

Every candidate is one (unit, token) activation. Its rank is a single int64 key: the float32
value mapped to an order-preserving int32 in the high 32 bits, and the token's global id
(`document * stride + position`) reversed in the low 32 bits. So the order is "activation
descending, then earlier document, then earlier position", with no ties at all: the top-k of a
dataset is one well-defined list, whatever the batch size, shard count or merge order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

EMPTY = torch.iinfo(torch.int64).min  # a slot no token has filled (fewer than k tokens seen)
_LOW = (1 << 32) - 1


def ordered_int(values: Float[Tensor, "..."]) -> Int[Tensor, "..."]:
    """float32 -> int64 in [-2^31, 2^31) with the same order (-0.0 just below +0.0)."""
    bits = values.float().contiguous().view(torch.int32).long()
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def from_ordered_int(ordered: Int[Tensor, "..."]) -> Float[Tensor, "..."]:
    bits = torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    return bits.to(torch.int32).view(torch.float32)


def compose(values: Float[Tensor, "..."], token_id: Int[Tensor, "..."]) -> Int[Tensor, "..."]:
    """The rank key of (value, global token id): larger key = ranked first."""
    return ordered_int(values) * (1 << 32) + (_LOW - token_id)


def decompose(keys: Int[Tensor, "..."]) -> tuple[Float[Tensor, "..."], Int[Tensor, "..."]]:
    """(value, global token id) of each key; meaningless where the key is EMPTY."""
    return from_ordered_int(keys >> 32), _LOW - (keys & _LOW)


@dataclass
class TopK:
    """The k best tokens of every unit so far, best first; `token` is the vocabulary id."""

    keys: Int[Tensor, "k unit"]
    token: Int[Tensor, "k unit"]

    @classmethod
    def empty(cls, k: int, units: int, device: torch.device | str = "cpu") -> TopK:
        keys = torch.full((k, units), EMPTY, dtype=torch.int64, device=device)
        return cls(keys, torch.full((k, units), -1, dtype=torch.int64, device=device))

    @property
    def k(self) -> int:
        return self.keys.shape[0]

    def merged(self, other: TopK) -> TopK:
        keys = torch.cat([self.keys, other.keys])
        token = torch.cat([self.token, other.token])
        best = keys.topk(self.k, dim=0).indices
        return TopK(keys.gather(0, best), token.gather(0, best))

    def values_and_ids(self) -> tuple[Float[Tensor, "k unit"], Int[Tensor, "k unit"]]:
        return decompose(self.keys)


def merge_all(parts: list[TopK]) -> TopK:
    out = parts[0]
    for part in parts[1:]:
        out = out.merged(part)
    return out


@torch.no_grad()
def batch_top_k(
    values: Float[Tensor, "token unit"],
    token_id: Int[Tensor, " token"],
    vocab_id: Int[Tensor, " token"],
    k: int,
) -> TopK:
    """The exact top-k of one batch of (counted) tokens.

    A float top-2k finds the candidates; only they get int64 keys. A unit whose 2k-th value
    still equals its k-th (ties running past the candidates) is redone on all its tokens.
    """
    n, units = values.shape
    values = values.float()
    wide = min(2 * k, n)
    top = values.topk(wide, dim=0)  # [wide unit]
    keys, rows = compose(top.values, token_id[top.indices]), top.indices
    if k <= wide < n:
        tied = top.values[k - 1] == top.values[wide - 1]
        if tied.any():
            cols = tied.nonzero()[:, 0]
            full = compose(values[:, cols], token_id[:, None].expand(-1, len(cols)))
            best = full.topk(wide, dim=0)
            keys[:, cols], rows[:, cols] = best.values, best.indices
    if wide < k:  # fewer tokens than k in this batch: pad with empty slots
        keys = torch.cat([keys, keys.new_full((k - wide, units), EMPTY)])
        rows = torch.cat([rows, rows.new_zeros((k - wide, units))])
    best = keys.topk(k, dim=0).indices
    keys, rows = keys.gather(0, best), rows.gather(0, best)
    token = torch.where(keys == EMPTY, -1, vocab_id[rows] if n else -1)
    return TopK(keys, token)

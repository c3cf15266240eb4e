"""The development / held-out split of a layer's neurons (issue 26: tune on 256, report on the
rest), fixed by a seed: the same neurons whatever a run asks for."""

from __future__ import annotations

from typing import Literal

import torch

Split = Literal["development", "held_out", "all"]


def neuron_split(d_mlp: int, n_development: int, seed: int) -> tuple[list[int], list[int]]:
    """(development, held-out): a seeded permutation of 0..d_mlp-1, its first n_development
    neurons and the rest, each sorted."""
    if not 0 <= n_development <= d_mlp:
        raise ValueError(f"n_development {n_development} must be in 0..{d_mlp} (the MLP width)")
    order = torch.randperm(d_mlp, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[:n_development]), sorted(order[n_development:])


def select_neurons(
    requested: list[int], d_mlp: int, split: Split, n_development: int, seed: int, limit: int | None
) -> list[int]:
    """The requested neurons that lie in `split`, in their order, the first `limit` of them."""
    development, held_out = neuron_split(d_mlp, n_development, seed)
    if split not in ("development", "held_out", "all"):
        raise ValueError(f"split must be development, held_out or all, got {split!r}")
    inside = (
        set(range(d_mlp))
        if split == "all"
        else set(development if split == "development" else held_out)
    )
    chosen = [n for n in requested if n in inside]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"max_neurons must be >= 1, got {limit}")
        chosen = chosen[:limit]
    if not chosen:
        raise ValueError(f"none of the requested neurons is in the {split} split")
    return chosen

"""The benchmark's split of a layer's neurons: 256 development neurons (recipes are tuned on
these only) and the rest held out (reported on, never tuned on). Fixed by a seed over
`range(n_neurons)`, the same for every method, run and helper that imports it."""

from __future__ import annotations

import torch

N_DEVELOPMENT = 256


def development_neurons(
    n_neurons: int = 2048, n_development: int = N_DEVELOPMENT, seed: int = 0
) -> list[int]:
    """The first `n_development` of a seeded permutation of `range(n_neurons)`, sorted."""
    if not 0 < n_development <= n_neurons:
        raise ValueError(
            f"n_development must be in 1..{n_neurons} (the layer's neurons), got {n_development}"
        )
    order = torch.randperm(n_neurons, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:n_development].tolist())


def held_out_neurons(
    n_neurons: int = 2048, n_development: int = N_DEVELOPMENT, seed: int = 0
) -> list[int]:
    """Every neuron of `range(n_neurons)` not in `development_neurons` (same arguments), sorted."""
    development = set(development_neurons(n_neurons, n_development, seed))
    return [n for n in range(n_neurons) if n not in development]

"""A random ranking, the floor every method must beat: one uniform [0, 1) score per edge from
a seeded generator (the same seed, the same scores; no pass through the model)."""

from __future__ import annotations

import time

import torch

from circuitforge.edges.peers.result import PeerScores


def random_scores(n_edges: int, seed: int = 0) -> PeerScores:
    if n_edges < 0:
        raise ValueError(f"the number of edges must be >= 0, got {n_edges}")
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(n_edges, generator=generator)
    return PeerScores("random", scores, 0.0, 0.0, time.perf_counter() - start)

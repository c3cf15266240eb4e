"""Prompt pairs for a converted tracr program (a fixture folder with `tracr.json`).

Inputs are BOS plus random tokens of the program's input vocabulary, of random lengths 1 to
`max_seq_len` (a clean input and its corrupted twin share a length). tracr models attend
bidirectionally, so padding would change the computation: rows are right-padded here only for
storage, and the datamodule batches rows of one length together (`length_batches`). The metric
reads every non-BOS position; there is no single answer token (answer = -1), so the loss is the
KL to the full model's output at every position.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from circuitforge.tasks.prompt_pairs import PairTensors


def load_tracr_meta(directory: str | Path) -> dict:
    path = Path(directory) / "tracr.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a tracr fixture (no tracr.json)")
    return json.loads(path.read_text())


def tracr_pairs(
    directory: str | Path, n: int, seed: int = 0, length: int | None = None
) -> PairTensors:
    """`n` pairs; all of `length` tokens after BOS when given, else of random lengths."""
    meta = load_tracr_meta(directory)
    vocab: list = meta["vocab"]
    bos = vocab.index(meta["bos"])
    pad = vocab.index(meta["pad"]) if meta.get("pad") in vocab else bos
    inputs = [i for i, token in enumerate(vocab) if token not in (meta["bos"], meta.get("pad"))]
    longest = meta["max_seq_len"]
    if length is not None and not 1 <= length <= longest:
        raise ValueError(f"length must be in 1..{longest}, got {length}")
    # programs whose inputs must not repeat a token (sort_unique) say so in their description
    unique = meta.get("unique_inputs", "must be unique" in meta.get("description", ""))
    if unique and longest > len(inputs):
        raise ValueError(f"{meta['program']}: {longest} unique tokens from {len(inputs)}")
    rng = random.Random(seed)

    def sample(size: int) -> list[int]:
        return rng.sample(inputs, size) if unique else [rng.choice(inputs) for _ in range(size)]

    clean = torch.full((n, longest + 1), pad)
    corrupt = torch.full((n, longest + 1), pad)
    read = torch.zeros(n, longest + 1, dtype=torch.bool)
    for row in range(n):
        size = length if length is not None else rng.randint(1, longest)
        clean[row, : size + 1] = torch.tensor([bos] + sample(size))
        corrupt[row, : size + 1] = torch.tensor([bos] + sample(size))
        read[row, 1 : size + 1] = True
    none = torch.full((n,), -1)
    return PairTensors(clean, corrupt, read, none, none.clone())


def length_batches(read: torch.Tensor, batch_size: int, seed: int | None) -> list[list[int]]:
    """Row indices grouped by length, in batches that never mix lengths (shuffled if seeded)."""
    by_length: dict[int, list[int]] = {}
    for row, size in enumerate(read.sum(1).tolist()):
        by_length.setdefault(size, []).append(row)
    batches = [
        rows[i : i + batch_size]
        for _, rows in sorted(by_length.items())
        for i in range(0, len(rows), batch_size)
    ]
    if seed is not None:
        random.Random(seed).shuffle(batches)
    return batches

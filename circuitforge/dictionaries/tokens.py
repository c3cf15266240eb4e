"""Token windows for dictionary training: a held-out split, packed rows, a seeded order.

Documents come from a .jsonl / .jsonl.gz corpus. A `split` field (`train` / `heldout`, as the
demo world's corpus has) decides the held-out documents; without one the last
`heldout_fraction` of the documents are held out (as the shipped SAEs' README did). Training
rows are packed (`BOS doc BOS doc ...`, every row led by BOS: `pack_documents`); the order of
the rows in each epoch is a permutation seeded by (seed, epoch), so a run and its resumption
read the same rows in the same order.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from circuitforge.manifest import verify_if_listed


def read_split_documents(
    path: Path, heldout_fraction: float, n_documents: int | None = None
) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts) of a .jsonl(.gz) corpus."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"corpus {path} does not exist")
    verify_if_listed(path)
    raw = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    records = records[:n_documents] if n_documents is not None else records
    if any("split" in r for r in records):
        train = [r["text"] for r in records if r.get("split") == "train"]
        held = [r["text"] for r in records if r.get("split") == "heldout"]
    else:
        if not 0 < heldout_fraction < 1:
            raise ValueError(f"heldout_fraction={heldout_fraction} must be in (0, 1)")
        n_held = max(1, round(len(records) * heldout_fraction))
        train = [r["text"] for r in records[:-n_held]]
        held = [r["text"] for r in records[-n_held:]]
    if not train or not held:
        raise ValueError(f"corpus {path}: needs both training and held-out documents")
    return train, held


def epoch_order(n_rows: int, seed: int, epoch: int) -> Int[Tensor, " row"]:
    """The rows' order in `epoch`: a permutation fixed by (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_rows, generator=generator)


def trained_positions(
    tokens: Int[Tensor, "batch pos"], excluded: list[int]
) -> Bool[Tensor, "batch pos"]:
    """Positions whose token is none of `excluded` (BOS, pad, other special tokens)."""
    mask = torch.ones_like(tokens, dtype=torch.bool)
    for token in excluded:
        mask &= tokens != token
    return mask

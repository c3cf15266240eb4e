"""The running profile of a layer's units: exact top-k contexts, mean, fraction active.

`NeuronProfile.update` folds in one batch of activations; `merged` combines two profiles of
disjoint documents (batches, shards, processes) into the profile of their union, exactly for
the top-k and up to float64 summation order for the means. Memory is O(k x units), however
large the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import add

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitforge.atlas.documents import DocumentBatch
from circuitforge.atlas.top_k import TopK, batch_top_k, merge_all

MAX_GLOBAL_ID = (1 << 32) - 1


def check_id_space(n_documents: int, stride: int) -> None:
    if n_documents * stride > MAX_GLOBAL_ID:
        raise ValueError(
            f"{n_documents} documents x {stride} positions exceed the 2^32 token ids of the "
            "atlas keys: profile fewer documents per run, or fewer tokens per document"
        )


@dataclass
class NeuronProfile:
    top: TopK
    total: Float[Tensor, " unit"]  # float64 sum of the counted activations
    active: Int[Tensor, " unit"]  # counted tokens with activation > threshold
    n_tokens: Int[Tensor, ""]  # counted tokens

    @classmethod
    def empty(cls, k: int, units: int, device: torch.device | str = "cpu") -> NeuronProfile:
        return cls(
            TopK.empty(k, units, device),
            torch.zeros(units, dtype=torch.float64, device=device),
            torch.zeros(units, dtype=torch.int64, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
        )

    @torch.no_grad()
    def update(
        self,
        activations: Float[Tensor, "batch pos unit"],
        batch: DocumentBatch,
        stride: int,
        threshold: float = 0.0,
        skip_bos: bool = True,
    ) -> None:
        counted = batch.counted(skip_bos).flatten()  # padding (and <bos>) never enter
        flat = activations.flatten(0, 1)[counted].float()
        ids = batch.global_ids(stride).flatten()[counted]
        top = batch_top_k(flat, ids, batch.tokens.flatten()[counted], self.top.k)
        if torch.isnan(top.values_and_ids()[0][0]).any():  # topk ranks NaN first
            raise FloatingPointError(
                f"NaN activations in documents {batch.document.tolist()}: the model (or its "
                "dtype) overflowed; profile in float32"
            )
        self.top = self.top.merged(top)
        self.total += flat.sum(0)  # float32 within a batch, float64 across batches
        self.active += (flat > threshold).sum(0)
        self.n_tokens += len(flat)

    def merged(self, other: NeuronProfile) -> NeuronProfile:
        return NeuronProfile(
            self.top.merged(other.top),
            self.total + other.total,
            self.active + other.active,
            self.n_tokens + other.n_tokens,
        )

    def tensors(self) -> dict[str, Tensor]:
        """Fixed-shape tensors (for an all-gather across processes, and for snapshots)."""
        return {
            "keys": self.top.keys,
            "token": self.top.token,
            "total": self.total,
            "active": self.active,
            "n_tokens": self.n_tokens,
        }

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> NeuronProfile:
        return cls(TopK(t["keys"], t["token"]), t["total"], t["active"], t["n_tokens"])

    @classmethod
    def merge_gathered(cls, gathered: dict[str, Tensor]) -> NeuronProfile:
        """Merge the profiles of every process from all-gathered tensors `[world, ...]`."""
        world = gathered["keys"].shape[0]
        parts = [cls.from_tensors({k: v[r] for k, v in gathered.items()}) for r in range(world)]
        top = merge_all([p.top for p in parts])
        return cls(
            top,
            reduce(add, [p.total for p in parts]),  # in process order, as the sums always were
            reduce(add, [p.active for p in parts]),
            reduce(add, [p.n_tokens for p in parts]),
        )

    def mean(self) -> Float[Tensor, " unit"]:
        return self.total / self.n_tokens.clamp_min(1)

    def fraction_active(self) -> Float[Tensor, " unit"]:
        return self.active.double() / self.n_tokens.clamp_min(1)

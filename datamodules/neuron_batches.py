"""Neurons of one layer in chunks of B: the batches of a neuron-explanation sweep.

Each batch is one chunk (a `NeuronChunk`: its number and neurons), explained in one predict step.
Under ddp every process takes chunks i = rank, rank + world, ...: `ChunkShards` is a
`DistributedSampler`, so Lightning keeps it, and unlike Lightning's own it never pads the
last process with repeated chunks (which would explain those neurons twice).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from circuitforge.batches import TensorBatch
from circuitforge.explanations.shards import shard
from circuitforge.numerics import require_at_least_one


@dataclass(frozen=True)
class NeuronChunk(TensorBatch):  # to(): Lightning moves it whole (it holds no tensors)
    """One batch of a sweep: chunk `chunk` of the layer's neurons."""

    chunk: int
    neurons: list[int]


class _Chunks(Dataset):
    def __init__(self, chunks: list[list[int]]) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> NeuronChunk:
        return NeuronChunk(i, list(self.chunks[i]))


class ChunkShards(DistributedSampler):
    def __init__(self, dataset: _Chunks, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.n_chunks = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(shard(self.n_chunks, self.rank, self.num_replicas))

    def __len__(self) -> int:
        return len(shard(self.n_chunks, self.rank, self.num_replicas))


class NeuronBatchDataModule(L.LightningDataModule):
    def __init__(
        self,
        neurons: list[int] | None = None,
        start: int = 0,
        stop: int | None = None,
        batch_size: int = 64,
    ) -> None:
        """Args:
        neurons: the neurons to explain; None = `start` .. `stop` (default: every neuron).
        start, stop: the range of neurons when `neurons` is None (stop None = the last).
        batch_size: neurons explained in one batch (one vector per neuron and seed).
        """
        super().__init__()
        require_at_least_one(batch_size=batch_size)
        self.requested, self.start, self.stop = neurons, start, stop
        self.batch_size = batch_size
        self.neurons: list[int] = []

    def bind_model(self, d_mlp: int) -> None:
        if self.requested is not None:
            neurons = list(self.requested)
            if not neurons:
                raise ValueError("neurons: give at least one neuron (or null for every one)")
        else:
            stop = d_mlp if self.stop is None else self.stop
            if not 0 <= self.start < stop <= d_mlp:
                raise ValueError(
                    f"neuron range {self.start}..{stop} out of range: the MLP has {d_mlp} neurons"
                )
            neurons = list(range(self.start, stop))
        bad = [n for n in neurons if not 0 <= n < d_mlp]
        if bad:
            raise ValueError(f"neuron(s) {bad[:10]} out of range: the MLP has {d_mlp} neurons")
        if len(set(neurons)) != len(neurons):
            raise ValueError("neurons: each neuron once (seeds are the model's `seeds`)")
        self.neurons = neurons

    def chunks(self) -> list[list[int]]:
        b = self.batch_size
        return [self.neurons[i : i + b] for i in range(0, len(self.neurons), b)]

    def describe(self) -> dict:
        return {"neurons": self.neurons, "batch_size": self.batch_size}

    def predict_dataloader(self) -> DataLoader:
        dataset = _Chunks(self.chunks())
        trainer = self.trainer
        world = trainer.world_size if trainer is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        return DataLoader(
            dataset,
            batch_size=None,  # one chunk is one batch (the default collate leaves it as it is)
            sampler=ChunkShards(dataset, world, rank),
        )

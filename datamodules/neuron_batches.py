"""Neurons of one layer in chunks of B: the batches of a neuron-explanation sweep.

Each batch is one chunk (`{"chunk": i, "neurons": [...]}`), explained in one predict step.
Under ddp every process takes chunks i = rank, rank + world, ...: `ChunkShards` is a
`DistributedSampler`, so Lightning keeps it, and unlike Lightning's own it never pads the
last process with repeated chunks (which would explain those neurons twice).
"""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from circuitforge.explanations.shards import shard
from circuitforge.numerics import require_at_least_one


class _Chunks(Dataset):
    def __init__(self, chunks: list[list[int]]) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict:
        return {"chunk": i, "neurons": self.chunks[i]}


class ChunkShards(DistributedSampler):
    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)

    def __iter__(self):
        return iter(shard(len(self.dataset), self.rank, self.num_replicas))

    def __len__(self) -> int:
        return len(shard(len(self.dataset), self.rank, self.num_replicas))


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
            batch_size=None,  # one chunk is one batch
            sampler=ChunkShards(dataset, world, rank),
            collate_fn=_as_batch,
        )


def _as_batch(item: dict) -> dict:
    return {"chunk": int(item["chunk"]), "neurons": list(item["neurons"])}

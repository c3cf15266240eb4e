"""The typed batches: Lightning moves a frozen PairBatch whole, pair_batch gathers and cuts the
rows a loader picks, and padded_to / repeated are plain tensor operations."""

import dataclasses

import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from circuitforge.batches import PairBatch, all_pairs, pair_batch
from circuitforge.tasks.prompt_pairs import PairTensors


def pairs() -> PairTensors:
    n, width = 4, 6
    g = torch.Generator().manual_seed(0)
    read = torch.zeros(n, width, dtype=torch.bool)
    read[torch.arange(n), torch.tensor([2, 3, 1, 5])] = True
    return PairTensors(
        torch.randint(0, 50, (n, width), generator=g),
        torch.randint(0, 50, (n, width), generator=g),
        read,
        torch.tensor([1, 2, 3, 4]),
        torch.tensor([5, 6, 7, 8]),
    )


def test_lightning_moves_a_frozen_batch_whole():
    batch = all_pairs(pairs())
    moved = move_data_to_device(batch, torch.device("meta"))
    assert isinstance(moved, PairBatch)
    assert all(getattr(moved, f.name).is_meta for f in dataclasses.fields(PairBatch))
    assert not batch.clean.is_meta  # a copy: the loader's batch is left as it was

    @dataclasses.dataclass(frozen=True)
    class Plain:  # what a frozen dataclass without `to` meets
        x: torch.Tensor

    with pytest.raises(ValueError, match="frozen dataclass"):
        move_data_to_device(Plain(torch.zeros(1)), torch.device("meta"))


def test_pair_batch_gathers_rows_and_cuts_unread_positions():
    p = pairs()
    batch = pair_batch(p, [2, 0])
    assert batch.index.tolist() == [2, 0]
    assert batch.clean.shape == (2, 3)  # row 0 reads position 2, row 2 position 1
    assert torch.equal(batch.clean, p.clean[[2, 0], :3])
    assert torch.equal(batch.read, p.read[[2, 0], :3])
    assert torch.equal(batch.wrong_answer, torch.tensor([7, 5]))
    padded = batch.padded_to(6)
    assert torch.equal(padded.clean[:, :3], batch.clean) and not padded.clean[:, 3:].any()
    with pytest.raises(ValueError, match="cannot pad to 2"):
        batch.padded_to(2)


def test_repeated_stacks_copies():
    batch = pair_batch(pairs(), [1, 3])
    twice = batch.repeated(2)
    assert torch.equal(twice.clean, torch.cat([batch.clean, batch.clean]))
    assert twice.answer.tolist() == [2, 4, 2, 4]

"""Dictionary training under ddp (two CPU processes on the demo model): each process reads its
own slice of the token stream and DDP averages the gradients, which is what one process with
`accumulate_grad_batches=2` computes on the same batches; a mid-epoch resume under ddp is exact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_dictionary_training import run_args
from train import main

# decay_fraction 0: the learning rate does not depend on the run's length, so a run stopped by
# max_steps and resumed is the same experiment step for step; 20,000-token dead window: no
# feature dies in these 12 steps (the counters of one process and of ddp see the same tokens in
# another order)
SETTINGS = ["--model.init_args.decay_fraction=0", "--model.init_args.dead_window_tokens=20000"]
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2"]


def ddp_run(tmp_path: Path, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = run_args(tmp_path, *SETTINGS, *DDP, *extra)
    run = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "not resumable" not in run.stderr
    (last,) = (tmp_path / "runs").glob("*/version_*/checkpoints/last.ckpt")
    return torch.load(last, weights_only=True)


@pytest.mark.slow
def test_two_processes_average_two_slices_and_resume_exactly(tmp_path):
    straight = ddp_run(tmp_path / "a")
    assert straight["global_step"] == 6  # 6 batches per epoch dealt to 2 processes, 2 epochs

    # one process, two batches per step: the same batches, the gradients' mean
    torch.set_num_threads(1)
    single = main(run_args(tmp_path / "c", *SETTINGS, "--trainer.accumulate_grad_batches=2"))
    assert single.trainer.global_step == 6
    mine = single.model.state_dict()
    assert int(mine["tokens_seen"]) == int(straight["state_dict"]["tokens_seen"]) > 0
    compared = 0
    for key, value in straight["state_dict"].items():
        # BatchTopK's threshold is a running average (read only by the exported JumpReLU): one
        # process updates it twice a step, ddp averages the two processes' updates
        if key.startswith("saes.") and not key.endswith("topk_threshold"):
            assert torch.allclose(value, mine[key], rtol=1e-4, atol=1e-5), key
            compared += 1
    assert compared == 8  # W_enc, b_enc, W_dec, b_dec of both dictionaries

    # interrupted mid-epoch (step 2 of 3 in epoch 0), resumed: the uninterrupted run exactly
    ddp_run(tmp_path / "b", "--trainer.max_steps=2")
    resumed = ddp_run(tmp_path / "b", "--ckpt_path=last")
    assert resumed["global_step"] == 6
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_each_process_reads_its_own_batches():
    from datamodules.activation_tokens import TokenWindows

    rows = torch.arange(14 * 2).reshape(14, 2)
    seen = []
    for rank in (0, 1):
        loader = TokenWindows(rows, 14, 2, seed=3, epoch_of=lambda: 0, rank=rank, processes=2)
        assert len(loader) == 3  # 7 batches: the 7th is left out, both processes step 3 times
        seen.append([b["tokens"] for b in loader])
    single = [b["tokens"] for b in TokenWindows(rows, 14, 2, seed=3, epoch_of=lambda: 0)]
    for step in range(3):  # step s: batch 2s in process 0, 2s + 1 in process 1
        assert torch.equal(seen[0][step], single[2 * step])
        assert torch.equal(seen[1][step], single[2 * step + 1])


def test_a_resume_with_another_number_of_processes_is_refused():
    from datamodules.activation_tokens import TokenWindows

    loader = TokenWindows(torch.zeros(8, 2, dtype=torch.long), 8, 2, 0, lambda: 0)
    with pytest.raises(ValueError, match="written by 2 process.*this run has 1"):
        loader.load_state_dict({"position": (0, 1), "processes": 2})

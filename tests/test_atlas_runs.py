"""The atlas and the reactivation through train.py, against plain TransformerLens computations.

One single-process atlas of the first 300 demo documents is built per session (conftest); a
brute-force computation (every activation of the layer kept, then sorted), a two-process ddp
run and the parquet file are checked against it.
"""

import json
import os
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch

from circuitforge.atlas.profile import NeuronProfile
from circuitforge.data.texts import load_texts
from circuitforge.model import hooks
from lightning_modules.trainer_access import log_dir
from tests.conftest import (
    BATCH,
    DEMO_CORPUS,
    LAYER,
    N_DOCUMENTS,
    ROOT,
    atlas_args,
    plain_tokens,
    results_of,
)
from train import main


@pytest.fixture(scope="module")
def atlas(demo_atlas_path):
    return json.loads(demo_atlas_path.read_text())


@pytest.fixture(scope="module")
def atlas_path(demo_atlas_path):
    return demo_atlas_path


@torch.no_grad()
def all_activations(model, texts):
    """Every (activation, document, position) of blocks.3.mlp.hook_post, <bos> left out; run
    in the atlas's batches, right-padded, with a plain run_with_cache."""
    values, where = [], []
    for start in range(0, len(texts), BATCH):
        rows = [plain_tokens(model, t) for t in texts[start : start + BATCH]]
        width = max(map(len, rows))
        tokens = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        _, cache = model.run_with_cache(tokens, names_filter=hooks.mlp_post(LAYER))
        acts = cache[hooks.mlp_post(LAYER)]
        for b, row in enumerate(rows):
            for pos in range(1, len(row)):
                values.append(acts[b, pos])
                where.append((start + b, pos))
    return torch.stack(values).numpy(), np.array(where)


def test_atlas_equals_a_brute_force_sort(atlas, demo_model):
    texts = load_texts(str(DEMO_CORPUS), N_DOCUMENTS)
    values, where = all_activations(demo_model, texts)
    assert atlas["n_tokens"] == len(values)
    ties = 0
    for unit in range(values.shape[1]):
        order = np.lexsort((where[:, 1], where[:, 0], -values[:, unit]))[:10]
        entry = atlas["neurons"][str(unit)]
        got = [(c["activation"], c["text_index"], c["token_position"]) for c in entry["top_k"]]
        want = [(float(values[i, unit]), *map(int, where[i])) for i in order]
        assert got == want, unit
        ties += len({v for v, _, _ in want}) < len(want)
        assert entry["mean_activation"] == pytest.approx(values[:, unit].mean(), rel=1e-5, abs=1e-6)
        assert entry["fraction_active"] == pytest.approx((values[:, unit] > 0).mean())
    assert ties > 50  # exact ties (documents that begin alike) are common: the order is tested


def test_trigger_tokens_are_found_in_the_reloaded_documents(atlas, demo_model):
    texts = load_texts(str(DEMO_CORPUS), N_DOCUMENTS)
    decode = demo_model.tokenizer.decode
    for entry in atlas["neurons"].values():
        for c in entry["top_k"]:
            ids = plain_tokens(demo_model, texts[c["text_index"]])
            assert decode([ids[c["token_position"]]]) == c["trigger_token"]
            assert f"[[{c['trigger_token']}" in c["context"].replace("[[ ", "[[")


def test_parquet_holds_the_same_rows(atlas, atlas_path):
    import pyarrow.parquet as pq

    table = pq.read_table(atlas_path.with_suffix(".parquet")).to_pylist()
    assert len(table) == sum(len(e["top_k"]) for e in atlas["neurons"].values())
    for row in table[:: max(1, len(table) // 200)]:
        want = atlas["neurons"][str(row["neuron"])]["top_k"][row["rank"]]
        assert {k: row[k] for k in want} == want


def test_two_ddp_processes_give_the_same_atlas(atlas, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = atlas_args(tmp_path, "--trainer.strategy=ddp", "--trainer.devices=2")
    run = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    merged = json.loads(results_of(tmp_path).read_text())
    assert merged["processes"] == 2 and atlas["processes"] == 1
    assert merged["n_tokens"] == atlas["n_tokens"]
    for unit, entry in atlas["neurons"].items():
        other = merged["neurons"][unit]
        assert other["top_k"] == entry["top_k"], unit
        assert other["fraction_active"] == entry["fraction_active"]
        # float32 sums inside a batch, float64 across: equal up to summation order
        assert other["mean_activation"] == pytest.approx(
            entry["mean_activation"], rel=1e-6, abs=1e-6
        )


@pytest.mark.parametrize(
    "extra, message",
    [
        ("--model.init_args.layer=4", "layer 4 out of range"),
        ("--model.init_args.hook=mlp.hook_postt", "no hook 'blocks.3.mlp.hook_postt'"),
        ("--model.init_args.k=0", "k must be at least 1"),
    ],
)
def test_bad_atlas_arguments(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        main(atlas_args(tmp_path, extra))


def test_tensorboard_gets_the_histogram_of_neuron_maxima(atlas, atlas_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(atlas_path.parents[1]), size_guidance={"histograms": 0})
    events.Reload()
    (maxima,) = events.Histograms("atlas/unit_max")
    assert maxima.histogram_value.num == len(atlas["neurons"])
    top = max(e["activation"] for e in atlas["neurons"].values())
    assert maxima.histogram_value.max == pytest.approx(top)
    assert any(tag.startswith("atlas/unit_") for tag in events.Tags()["tensors"])


class CrashAtBatch(L.Callback):
    """Stands for a killed atlas run: raises when the given predict batch starts."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if batch_idx == self.batch:
            raise RuntimeError("interrupted")


def profiled_batches(monkeypatch) -> list[int]:
    """Counts the batches folded into an atlas profile from now on."""
    seen: list[int] = []
    update = NeuronProfile.update

    def counting(self, *args, **kwargs):
        seen.append(1)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(NeuronProfile, "update", counting)
    return seen


def test_ckpt_path_last_resumes_an_interrupted_atlas_bit_identically(
    atlas, tmp_path, capsys, monkeypatch
):
    crash = '{"class_path": "tests.test_atlas_runs.CrashAtBatch", "init_args": {"batch": 3}}'
    snapshots = "--model.init_args.snapshot_every_n_batches=2"
    with pytest.raises(RuntimeError, match="interrupted"):
        main(atlas_args(tmp_path, snapshots, f"--trainer.callbacks+={crash}"))
    (interrupted,) = tmp_path.glob("*/version_*")
    assert not (interrupted / "results").exists()
    with pytest.raises(ValueError) as refused:
        main(atlas_args(tmp_path, "--ckpt_path=last", "--model.init_args.k=5"))
    assert "model.init_args.k: snapshot 10, command line 5" in str(refused.value)
    profiled = profiled_batches(monkeypatch)
    resumed = main(atlas_args(tmp_path, "--ckpt_path=last"))  # without the crash
    assert f"resuming {interrupted / 'atlas_snapshot'}" in capsys.readouterr().err
    assert log_dir(resumed.trainer) == interrupted  # the same version folder
    assert resumed.model.batches_done == 5 and len(profiled) == 3  # 2 were in the snapshot
    assert json.loads(results_of(tmp_path).read_text())["neurons"] == atlas["neurons"]


def test_ckpt_path_folder_continues_its_snapshots_in_a_new_run(atlas, tmp_path, monkeypatch):
    crash = '{"class_path": "tests.test_atlas_runs.CrashAtBatch", "init_args": {"batch": 3}}'
    snapshots = "--model.init_args.snapshot_every_n_batches=2"
    with pytest.raises(RuntimeError, match="interrupted"):
        main(atlas_args(tmp_path / "a", snapshots, f"--trainer.callbacks+={crash}"))
    (interrupted,) = (tmp_path / "a").glob("*/version_*")
    with pytest.raises(ValueError, match="processes: snapshot 1, command line 2"):
        main(atlas_args(tmp_path / "b", f"--ckpt_path={interrupted}", "--trainer.devices=2",
                        "--trainer.strategy=ddp"))  # fmt: skip
    profiled = profiled_batches(monkeypatch)
    main(atlas_args(tmp_path / "b", f"--ckpt_path={interrupted}"))
    assert len(profiled) == 3
    assert json.loads(results_of(tmp_path / "b").read_text())["neurons"] == atlas["neurons"]


def test_the_removed_resume_from_flag_is_refused_naming_ckpt_path_last(tmp_path):
    with pytest.raises(ValueError, match=r"^resume_from is gone: .*--ckpt_path last") as refused:
        main(atlas_args(tmp_path, f"--model.init_args.resume_from={tmp_path}"))
    assert "\n" not in str(refused.value)  # one line
    config = tmp_path / "old.yaml"
    config.write_text(f"model:\n  init_args:\n    resume_from: {tmp_path}\n")
    with pytest.raises(ValueError, match="--ckpt_path last"):
        main(atlas_args(tmp_path, "--config", str(config)))


def test_a_second_predict_profiles_everything_again(tmp_path):
    cli = main(atlas_args(tmp_path, "--data.init_args.n_documents=70"))
    first = int(cli.model.profile.n_tokens)
    cli.trainer.predict(cli.model, datamodule=cli.datamodule)
    assert int(cli.model.profile.n_tokens) == first > 0

"""Dictionary training on activations cached once on disk (`CachedActivationsDataModule`): the
cache holds the streaming path's activations for the same tokens, a cached run trains without a
forward, a cache of another stream is refused, and `DictionaryPilot` can leave b_dec at zero."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformer_lens import HookedTransformer

from circuitforge.dictionaries.activation_cache import write_activation_cache
from circuitforge.dictionaries.centring import input_statistics
from circuitforge.dictionaries.tokens import trained_positions
from datamodules.activation_tokens import ActivationTokensDataModule, TokenWindows
from datamodules.cached_activations import CachedActivationsDataModule, CachedWindows
from tests.conftest import DEMO_CORPUS, ROOT
from train import main

HOOKS = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
CONTEXT, BATCH, ROWS = 32, 16, 64  # 4 batches an epoch


def stream(**kwargs) -> ActivationTokensDataModule:
    args = {"corpus": str(DEMO_CORPUS), "context": CONTEXT, "batch_size": BATCH, "heldout_rows": 8}
    return ActivationTokensDataModule(**{**args, **kwargs})


def write_cache(model, folder: Path, seed: int = 0, hooks=HOOKS, bf16: bool = False) -> Path:
    data = stream(seed=seed)
    data.bind_tokenizer(model)
    meta = {"corpus": str(DEMO_CORPUS), "seed": seed}
    return write_activation_cache(model, data.first_rows(ROWS), hooks, folder, meta, bf16)


@pytest.fixture(scope="module")
def cache(demo_model, tmp_path_factory) -> Path:
    return write_cache(demo_model, tmp_path_factory.mktemp("cache") / "demo")


def cached_data(cache: Path, model, **kwargs) -> CachedActivationsDataModule:
    args = {"corpus": str(DEMO_CORPUS), "context": CONTEXT, "batch_size": BATCH, "heldout_rows": 8}
    data = CachedActivationsDataModule(cache=str(cache), **{**args, **kwargs})
    data.bind_tokenizer(model)
    return data


def test_the_cache_holds_the_streaming_activations_of_the_same_tokens(
    demo_model: HookedTransformer, cache: Path
):
    streaming = stream(tokens_per_epoch=ROWS * CONTEXT)
    streaming.bind_tokenizer(demo_model)
    cached = cached_data(cache, demo_model)
    assert cached.excluded == streaming.excluded and cached.excluded
    assert streaming.train_rows is not None and cached.train_rows is not None
    assert cached.heldout is not None and streaming.heldout is not None
    assert cached.activation_cache is not None
    assert torch.equal(cached.heldout, streaming.heldout)
    plain = TokenWindows(streaming.train_rows, ROWS, BATCH, 0, lambda: 0)
    epoch = [0]
    from_cache = CachedWindows(
        cached.activation_cache, cached.excluded, cached.train_rows, ROWS, BATCH, 0,
        lambda: epoch[0],
    )  # fmt: skip
    batches = list(from_cache)
    assert len(batches) == len(list(plain)) == ROWS // BATCH
    for mine, theirs in zip(batches, plain):  # epoch 0: the streaming run's batches
        tokens = theirs["tokens"]
        assert torch.equal(mine["tokens"], tokens)
        positions = trained_positions(tokens, streaming.excluded)
        assert not positions.all()  # BOS (and other special tokens) are left out
        _, reference = demo_model.run_with_cache(tokens)  # an independent full forward
        for hook in HOOKS:
            expected = reference[hook][positions]
            got = mine["activations"][hook]
            assert got.shape == expected.shape and got.dtype == torch.float32
            # bf16 on disk: within half a bf16 unit of the fp32 activation
            assert ((got - expected).abs() <= expected.abs() * 2**-8 + 1e-6).all(), hook
    first = torch.cat([b["tokens"] for b in batches])
    epoch[0] = 1  # the next epoch: the same cached rows, each once, in another order
    second = torch.cat([b["tokens"] for b in from_cache])
    assert not torch.equal(first, second)
    assert sorted(map(tuple, first.tolist())) == sorted(map(tuple, second.tolist()))
    assert sorted(map(tuple, first.tolist())) == sorted(map(tuple, cached.train_rows.tolist()))
    from_cache.start = (1, 2)  # a resumed epoch 1 continues at its step 2 with the same rows
    resumed = list(from_cache)
    assert [b["index"] for b in resumed] == [2, 3]
    assert torch.equal(torch.cat([b["tokens"] for b in resumed]), second[BATCH * 2 :])
    assert torch.equal(cached.first_rows(4), streaming.first_rows(4))  # the centring's slice
    stats = input_statistics(cached.first_activations(4)[HOOKS[0]])
    assert stats.n_tokens == int(trained_positions(cached.first_rows(4), cached.excluded).sum())


def run_config(tmp_path: Path, cache: Path, **model_args) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "dictionaries" / "demo.yaml").read_text())
    config["model"]["class_path"] = "lightning_modules.DictionaryPilot"
    config["model"]["init_args"].update(
        dictionaries=[{"hook": HOOKS[1], "width": 64, "k": 4}], **model_args
    )
    config["data"] = {
        "class_path": "datamodules.CachedActivationsDataModule",
        "init_args": {
            "cache": str(cache),
            "corpus": str(DEMO_CORPUS),
            "context": CONTEXT,
            "batch_size": BATCH,
            "heldout_rows": 8,
        },
    }
    config["trainer"]["max_epochs"] = 2
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "runs")
    path = tmp_path / "cached.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit(config: Path, *extra: str):
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    return main(["fit", "--config", str(config), *quiet, *extra])


def _no_forward(*args, **kwargs):
    raise AssertionError("the model ran a forward")


@pytest.mark.parametrize("centre", [True, False])
def test_a_cached_run_trains_without_a_forward(tmp_path, cache, monkeypatch, centre):
    monkeypatch.setattr(HookedTransformer, "forward", _no_forward)  # eval_every_n_steps is 0
    run = fit(run_config(tmp_path, cache, centre_decoder_bias=centre))
    module, data = run.model, run.datamodule
    assert run.trainer.global_step == 2 * (ROWS // BATCH)
    x = data.first_activations(module.init_rows)[HOOKS[1]]
    stats = input_statistics(x)
    assert module.scale(module.specs[0]) == pytest.approx(stats.scale)
    tokens = int(trained_positions(data.train_rows, data.excluded).sum())
    assert int(module.tokens_seen) == 2 * tokens
    b_dec = module.saes[module.specs[0].key()].b_dec.detach()
    mean = stats.mean * stats.scale
    assert mean.abs().max() > 0.5  # centring is visible at this size
    # 8 Adam steps at lr <= 2e-3 move b_dec by at most ~0.02 from where it started
    start = mean if centre else torch.zeros_like(mean)
    assert (b_dec - start).abs().max() < 0.05


def test_a_cache_of_another_stream_or_hook_is_refused(tmp_path, cache, demo_model, monkeypatch):
    other = write_cache(demo_model, tmp_path / "seed1", seed=1)
    missing = tmp_path / "missing"
    monkeypatch.setattr(HookedTransformer, "forward", _no_forward)
    with pytest.raises(ValueError, match="its tokens are not the first rows of this run's"):
        fit(run_config(tmp_path, other))
    with pytest.raises(ValueError, match="does not exist .*scripts/cache_activations.py"):
        fit(run_config(tmp_path, missing))
    one_hook = tmp_path / "one_hook"
    shutil.copytree(cache, one_hook)
    meta = json.loads((one_hook / "meta.json").read_text())
    meta["hooks"] = [HOOKS[0]]
    (one_hook / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"holds \['blocks.0.hook_resid_post'\], not \['blocks.2"):
        fit(run_config(tmp_path, one_hook))
    with pytest.raises(ValueError, match="written with the model's bf16=False.*model.bf16=True"):
        fit(run_config(tmp_path, cache, bf16=True))

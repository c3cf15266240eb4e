"""Dictionary training as a run (`configs/dictionaries/*.yaml`): sae-lens SAEs fed by one frozen
forward, centred, exported loadable with a manifest, resumed bit-identically after `kill -9`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from circuitforge.dictionaries.activations import hook_activations
from circuitforge.dictionaries.centring import centre_decoder_bias, input_statistics
from circuitforge.dictionaries.export import export_dictionary
from circuitforge.dictionaries.specs import DictionarySpec, training_sae
from circuitforge.dictionaries.tokens import epoch_order, read_split_documents
from circuitforge.dictionaries.training import explained_variance, training_step
from circuitforge.manifest import verify_manifest
from datamodules.activation_tokens import TokenWindows
from lightning_modules.trainer_access import log_dir
from tests.conftest import DEMO_CORPUS, ROOT
from tests.killing import kill_during_write
from train import main

CONFIG = ROOT / "configs" / "dictionaries" / "demo.yaml"
DICTIONARIES = (
    "[{hook: blocks.0.hook_resid_post, width: 512, k: 2},"
    " {hook: blocks.2.hook_resid_post, width: 32, k: 4, architecture: batchtopk}]"
)
STEPS_PER_EPOCH = 6


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIG),
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        f"--model.init_args.dictionaries={DICTIONARIES}",
        f"--data.init_args.tokens_per_epoch={32 * 16 * STEPS_PER_EPOCH}",
        "--data.init_args.heldout_rows=8",
        "--model.init_args.dead_window_tokens=1500",  # features die, so AuxK trains
        "--checkpoint.every_n_train_steps=2",
        "--trainer.max_epochs=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


@pytest.mark.parametrize(
    "kill_at",
    [
        "step=4",  # epoch 0 has steps 1..6: resumes from step 2, mid-epoch
        pytest.param("step=8", marks=pytest.mark.slow),  # resumes from step 6, the epoch's last
    ],
)
def test_kill_9_mid_epoch_then_resume_is_bit_identical(tmp_path, kill_at):
    straight = main(run_args(tmp_path / "a"))
    args = run_args(tmp_path / "b")
    kill_during_write(args, kill_at, tmp_path / "writing")
    resumed = main(run_args(tmp_path / "b", "--ckpt_path=last"))
    assert resumed.trainer.global_step == straight.trainer.global_step == 2 * STEPS_PER_EPOCH
    a, b = straight.model, resumed.model
    assert set(a.state_dict()) == set(b.state_dict())
    for key, value in a.state_dict().items():  # SAEs, dead counters, scales, token count
        assert torch.equal(value, b.state_dict()[key]), key
    for spec in a.specs:  # the dead-feature counters came back with the checkpoint
        assert torch.equal(a.since_fired(spec), b.since_fired(spec)), spec.hook
        assert a.scale(spec) == b.scale(spec) > 0
    assert int(a.tokens_seen) == int(b.tokens_seen) > 0
    assert any(int(a.since_fired(s).max()) > 0 for s in a.specs)
    folders = [log_dir(m.trainer) / "dictionaries" for m in (straight, resumed)]
    for name in ("layer_0", "layer_2"):
        for folder in folders:
            verify_manifest(folder / name)
        first, second = (f / name / "sae_weights.safetensors" for f in folders)
        assert first.read_bytes() == second.read_bytes()
    sae = SAE.load_from_disk(folders[1] / "layer_0")
    assert sae.cfg.metadata.hook_name == "blocks.0.hook_resid_post"
    assert sae.cfg.metadata.training_tokens == int(a.tokens_seen)
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k) == (128, 512, 2)


@pytest.mark.slow
def test_interrupted_run_differs_without_its_stream_position(tmp_path):
    """The resume test can fail: a resumed run that restarts the epoch's stream is not the
    uninterrupted run."""
    straight = main(run_args(tmp_path / "a", "--trainer.max_epochs=1"))
    kill_during_write(run_args(tmp_path / "b", "--trainer.max_epochs=1"), "step=4", tmp_path / "w")
    from datamodules.activation_tokens import ActivationTokensDataModule

    original = ActivationTokensDataModule.load_state_dict
    ActivationTokensDataModule.load_state_dict = lambda self, state: None
    try:
        resumed = main(run_args(tmp_path / "b", "--trainer.max_epochs=1", "--ckpt_path=last"))
    finally:
        ActivationTokensDataModule.load_state_dict = original
    key = "saes.blocks__0__hook_resid_post.W_dec"
    assert not torch.equal(straight.model.state_dict()[key], resumed.model.state_dict()[key])


def test_held_out_split_and_seeded_order():
    train, held = read_split_documents(DEMO_CORPUS, 0.1)
    assert train and held and not set(train) & set(held)
    assert torch.equal(epoch_order(100, 3, 1), epoch_order(100, 3, 1))
    assert not torch.equal(epoch_order(100, 3, 0), epoch_order(100, 3, 1))
    rows = torch.arange(40).reshape(20, 2)
    loader = TokenWindows(rows, 16, 4, seed=0, epoch_of=lambda: 0)
    full = [b["tokens"] for b in loader]
    assert len(full) == 4 and torch.equal(torch.cat(full).flatten().sort().values[:0], rows[:0, 0])
    loader.start = (0, 2)
    assert [b["index"] for b in loader] == [2, 3]
    assert [b["index"] for b in loader] == [0, 1, 2, 3]  # the next epoch starts at 0


def test_centring_export_and_one_forward(demo_model: HookedTransformer, tmp_path):
    tokens = torch.randint(3, demo_model.cfg.d_vocab, (4, 16))
    positions = torch.ones_like(tokens, dtype=torch.bool)
    positions[:, 0] = False
    hooks = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    acts = hook_activations(demo_model, tokens, hooks, 3, positions)
    _, cache = demo_model.run_with_cache(tokens)
    for hook in hooks:  # the independent reference: a full forward's cache
        assert torch.allclose(acts[hook], cache[hook][:, 1:].reshape(-1, 128), atol=1e-5)
    x = acts["blocks.2.hook_resid_post"]
    stats = input_statistics(x)
    assert torch.allclose(stats.mean, x.mean(0), atol=1e-5)
    assert abs(((x - x.mean(0)) * stats.scale).norm(dim=-1).mean() - 128**0.5) < 1e-3
    torch.manual_seed(0)
    sae = training_sae(DictionarySpec(hooks[1], width=64, k=8), 128, "demo")
    centre_decoder_bias(sae, stats)
    assert torch.allclose(sae.b_dec, x.mean(0) * stats.scale, atol=1e-5)
    since = torch.zeros(64, dtype=torch.long)
    since[:10] = 10**6
    result = training_step(sae, x * stats.scale, since, dead_window_tokens=1000, step=0)
    assert "auxiliary_reconstruction_loss" in result.metrics  # AuxK on the 10 dead features
    assert int(since.max()) <= 10**6 + x.shape[0] and int(since.min()) == 0
    x_hat = (1 - result.metrics["explained_variance"]) * (x - x.mean(0)).pow(2).sum()
    assert torch.isclose(
        x_hat, (x - sae(x * stats.scale).detach() / stats.scale).pow(2).sum(), rtol=1e-3
    )
    folder = export_dictionary(sae, stats.scale, tmp_path / "layer_2", {"training_tokens": 7})
    verify_manifest(folder)
    saved = SAE.load_from_disk(folder)  # reads raw activations: the scale is folded in
    expected = sae(x * stats.scale).detach() / stats.scale
    assert torch.allclose(saved(x), expected, atol=1e-4)
    assert float(explained_variance(x, saved(x))) == pytest.approx(
        1 - float(x_hat / (x - x.mean(0)).pow(2).sum()), abs=1e-3
    )


@pytest.mark.parametrize(
    "arg,message",
    [
        ("[{hook: blocks.9.hook_resid_post, width: 32, k: 4}]", "has no such hook"),
        ("[{hook: blocks.0.hook_resid_post, width: 0, k: 4}]", "width=0 must be at least 1"),
        ("[{hook: blocks.0.hook_resid_post, width: 32, k: 0}]", r"k=0 must be in \[1"),
        ("[{hook: blocks.0.hook_resid_post, width: 32, k: 33}]", r"k=33 must be in \[1"),
        ("[{hook: blocks.0.hook_resid_post, width: 32, k: 4, d_in: 64}]", "d_in=64 does not"),
        (
            "[{hook: blocks.0.hook_resid_post, width: 32, k: 4, extra: {d_in: 64}}]",
            r"extra sets \['d_in'\]; give them as the spec's own fields",
        ),
        (
            "[{hook: blocks.0.hook_resid_post, width: 32, k: 4, extra: {l1_coef: 1}}]",
            r"extra fields \['l1_coef'\] are not fields of sae-lens's TopKTrainingSAEConfig",
        ),
        ("[{hook: blocks.0.mlp.hook_post, width: 32, k: 4}]", "only residual-stream hooks"),
    ],
)
def test_bad_dictionaries_are_refused_before_any_forward(tmp_path, monkeypatch, arg, message):
    monkeypatch.setattr(HookedTransformer, "forward", _no_forward)
    with pytest.raises(ValueError, match=message):
        main(run_args(tmp_path, f"--model.init_args.dictionaries={arg}"))


def test_a_budget_beyond_the_corpus_is_refused_before_any_forward(tmp_path, monkeypatch):
    monkeypatch.setattr(HookedTransformer, "forward", _no_forward)
    with pytest.raises(
        ValueError, match="tokens_per_epoch=10000000 is more than .*trainer.max_epochs"
    ):
        main(run_args(tmp_path, "--data.init_args.tokens_per_epoch=10000000"))


def _no_forward(*args, **kwargs):
    raise AssertionError("the model ran before the input was checked")


def test_a_mid_epoch_resume_has_a_resumable_loader(tmp_path, recwarn):
    """The loader keeps its position itself (Lightning's state_dict interface), so Lightning's
    "your dataloader is not resumable" warning does not appear (the kill test shows the position
    is exact)."""
    first = main(run_args(tmp_path, "--trainer.max_steps=2"))
    saved = torch.load(log_dir(first.trainer) / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"position": (0, 2), "processes": 1}
    ]
    assert saved["ActivationTokensDataModule"] == {"position": (0, 2)}  # as before: old runs
    recwarn.clear()
    resumed = main(run_args(tmp_path, "--trainer.max_steps=4", "--ckpt_path=last"))
    assert resumed.trainer.global_step == 4
    assert resumed.datamodule.position == (0, 4)
    assert not [w for w in recwarn if "not resumable" in str(w.message)]

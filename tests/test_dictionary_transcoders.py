"""Per-layer skip transcoders trained as a run (`configs/dictionaries/demo_transcoders.yaml`) and
exported in circuit-tracer's transcoder-set format: the export reads back against the format,
and what a transcoder computes equals a brute-force computation from the exported tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from sae_lens import JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig
from safetensors.torch import load_file
from transformer_lens import HookedTransformer

from circuitforge.dictionaries.transcoder_set import read_transcoder_set, write_transcoder_set
from circuitforge.manifest import verify_manifest
from lightning_modules.trainer_access import log_dir
from tests.conftest import ROOT
from train import main

CONFIG = ROOT / "configs" / "dictionaries" / "demo_transcoders.yaml"
STEPS = 6


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIG),
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        "--model.init_args.transcoders=[{layer: 0, width: 64, k: 4}, {layer: 1, width: 48, k: 8}]",
        f"--data.init_args.tokens_per_epoch={32 * 16 * STEPS}",
        "--data.init_args.heldout_rows=8",
        "--checkpoint.every_n_train_steps=4",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return main(run_args(tmp_path_factory.mktemp("transcoders")))


def test_the_export_is_a_transcoder_set(trained):
    folder = log_dir(trained.trainer) / "transcoders"
    verify_manifest(folder)
    config, layers = read_transcoder_set(folder)
    assert config["model_kind"] == "transcoder_set"
    assert (config["feature_input_hook"], config["feature_output_hook"]) == (
        "hook_resid_mid",
        "hook_mlp_out",
    )
    assert config["transcoders"] == [str(folder / f"layer_{i}.safetensors") for i in (0, 1)]
    assert config["training_tokens"] == int(trained.model.tokens_seen) > 0
    for layer, width in ((0, 64), (1, 48)):  # circuit-tracer's layout, read with safetensors
        tensors = load_file(str(folder / f"layer_{layer}.safetensors"))
        shapes = {name: tuple(t.shape) for name, t in tensors.items()}
        assert shapes == {
            "W_enc": (width, 128),
            "W_dec": (width, 128),
            "b_enc": (width,),
            "b_dec": (128,),
            "W_skip": (128, 128),
            "activation_function.threshold": (width,),
        }
        assert all(torch.equal(tensors[k], layers[layer][k]) for k in tensors)
        assert float(tensors["activation_function.threshold"][0]) > 0  # BatchTopK's, learnt
        assert tensors["W_skip"].abs().sum() > 0  # the skip connection trained


@torch.no_grad()
def test_a_transcoder_computes_what_its_exported_tensors_say(trained, demo_model):
    """The trained module (sae-lens's encoder and decoder, our centring and scales, the learnt
    threshold as JumpReLU) against a per-feature computation from the files alone."""
    module = trained.model
    folder = log_dir(trained.trainer) / "transcoders"
    tokens = torch.randint(4, demo_model.cfg.d_vocab, (3, 12))
    _, cache = demo_model.run_with_cache(tokens)
    for spec in module.specs:
        x = cache[spec.input_hook].reshape(-1, 128)
        files = load_file(str(folder / f"layer_{spec.layer}.safetensors"))
        expected = files["b_dec"] + x @ files["W_skip"].T
        for f in range(spec.width):  # feature by feature: pre-activation, threshold, direction
            pre = x @ files["W_enc"][f] + files["b_enc"][f]
            on = pre > files["activation_function.threshold"][f]
            expected = expected + (pre * on)[:, None] * files["W_dec"][f]
        sae, stats = module.saes[spec.key()], module.statistics(spec)
        scaled = (x - stats.input_mean) * stats.input_scale
        with sae.reading(scaled):
            _, pre = sae.encode_with_hidden_pre(scaled)
            acts = pre * (pre > float(sae.topk_threshold))
            mine = sae.decode(acts) / stats.output_scale
        assert torch.allclose(mine, expected, rtol=1e-4, atol=1e-4), spec.layer
        assert (acts != 0).any()
        # sae-lens's own inference class, given the files, computes the same
        inference = JumpReLUSkipTranscoder(
            JumpReLUSkipTranscoderConfig(
                d_in=128, d_sae=spec.width, d_out=128, apply_b_dec_to_input=False
            )
        )
        inference.load_state_dict(
            {
                "W_enc": files["W_enc"].T,
                "b_enc": files["b_enc"],
                "W_dec": files["W_dec"],
                "b_dec": files["b_dec"],
                "W_skip": files["W_skip"],
                "threshold": files["activation_function.threshold"],
            }
        )
        assert torch.allclose(inference.eval()(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "arg,message",
    [
        ("[{layer: 4, width: 32, k: 4}]", "no hook 'blocks.4.hook_resid_mid'"),
        ("[{layer: 0, width: 0, k: 4}]", "width=0 must be at least 1"),
        ("[{layer: 0, width: 32, k: 0}]", r"k=0 must be in \[1"),
        ("[{layer: 0, width: 32, k: 33}]", r"k=33 must be in \[1"),
        ("[{layer: 0, width: 32, k: 4}, {layer: 0, width: 32, k: 4}]", "layer appears twice"),
        ("[{layer: 1, width: 32, k: 4}]", "reads layers 0..n-1 with none missing"),
    ],
)
def test_bad_transcoders_are_refused_before_any_forward(tmp_path, monkeypatch, arg, message):
    def no_forward(*args, **kwargs):
        raise AssertionError("the model ran before the input was checked")

    monkeypatch.setattr(HookedTransformer, "forward", no_forward)
    with pytest.raises(ValueError, match=message):
        main(run_args(tmp_path, f"--model.init_args.transcoders={arg}"))


def test_the_reader_refuses_what_circuit_tracer_would_not_read(tmp_path):
    layer = {
        "W_enc": torch.zeros(8, 4),
        "W_dec": torch.zeros(8, 4),
        "b_enc": torch.zeros(8),
        "b_dec": torch.zeros(4),
    }
    with pytest.raises(ValueError, match="layers 0..n-1 with none missing"):
        write_transcoder_set(tmp_path / "a", {1: layer}, "hook_resid_mid", "hook_mlp_out")
    with pytest.raises(ValueError, match="W_dec has shape"):
        bad = {**layer, "W_dec": torch.zeros(4, 8)}
        write_transcoder_set(tmp_path / "b", {0: bad}, "hook_resid_mid", "hook_mlp_out")
    folder = write_transcoder_set(tmp_path / "c", {0: layer}, "hook_resid_mid", "hook_mlp_out")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "model_kind": "sae"}))
    with pytest.raises(ValueError, match="model_kind is 'sae'"):
        read_transcoder_set(folder)


def test_the_gemma_config_parses_with_every_layer(monkeypatch):
    from tests.test_dictionary_settings import settings_of

    settings = settings_of(monkeypatch, ROOT / "configs/dictionaries/gemma3_transcoders.yaml")
    layers = [v for k, v in settings.items() if k.endswith(".layer")]
    assert layers == list(range(18))
    assert settings["model.class_path"] == "lightning_modules.TranscoderTraining"


@pytest.mark.slow
def test_an_interrupted_transcoder_run_resumes_exactly(tmp_path):
    """Stopped mid-epoch (max_steps; decay_fraction 0 so the schedule does not depend on the
    run's length) and resumed with --ckpt_path last: the uninterrupted run, bit for bit."""
    same = ["--model.init_args.decay_fraction=0", "--trainer.max_epochs=1"]
    straight = main(run_args(tmp_path / "a", *same))
    main(run_args(tmp_path / "b", *same, "--trainer.max_steps=4"))
    resumed = main(run_args(tmp_path / "b", *same, "--ckpt_path=last"))
    assert resumed.trainer.global_step == straight.trainer.global_step == STEPS
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert set(a) == set(b) and any(k.endswith("W_skip") for k in a)
    for key, value in a.items():  # transcoders, statistics, counters, token count
        assert torch.equal(value, b[key]), key

"""Pretraining the demo model through the CLI, on a tiny corpus and a tiny model."""

import json
import math
from pathlib import Path

import torch
import yaml
from transformer_lens import HookedTransformer

from circuitforge.demo_world.architecture import DemoArchitecture
from circuitforge.model.local_dir import load_model_dir, load_tokenizer
from lightning_modules.trainer_access import log_dir
from tests.conftest import ROOT
from train import main

CONFIG = ROOT / "configs" / "demo" / "pretrain_lm.yaml"
TINY = dict(n_layers=2, d_model=32, n_heads=4, n_key_value_heads=2, d_head=8, d_mlp=64, n_ctx=96)


def tiny_config(tmp_path: Path) -> Path:
    config = yaml.safe_load(CONFIG.read_text())
    config["model"]["init_args"].update(architecture=TINY, warmup_steps=5)
    config["data"]["init_args"].update(
        n_train_documents=400, n_heldout_per_topic=3, out_dir=str(tmp_path / "world")
    )
    config["trainer"].update(max_epochs=2, enable_progress_bar=False, enable_model_summary=False)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "runs")
    evaluation, export = config["trainer"]["callbacks"]
    evaluation["init_args"]["n_prompts"] = 20
    export["init_args"]["directory"] = str(tmp_path / "world" / "model")
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_pretraining_learns_and_exports_the_model_it_trained(tmp_path):
    cli = main(["fit", "--config", str(tiny_config(tmp_path))])
    world = tmp_path / "world"
    records = [json.loads(line) for line in (world / "corpus.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "validation", "heldout"}

    result = json.loads((log_dir(cli.trainer) / "results" / "language_model.json").read_text())
    d_vocab = len(load_tokenizer(world / "tokenizer.json"))
    first, last = result["history"][0], result["history"][-1]
    assert len(result["history"]) == 2
    assert max(last["validation_loss"].values()) < math.log(d_vocab)  # better than uniform
    assert sum(last["validation_loss"].values()) < sum(first["validation_loss"].values())

    # the exported directory is the checkpoint's model, with the tied unembedding made explicit
    ckpt = torch.load(log_dir(cli.trainer) / "checkpoints" / "last.ckpt", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    assert "unembed.W_U" not in state  # tied while training
    rebuilt = HookedTransformer(DemoArchitecture(**TINY).config(d_vocab), move_to_device=False)
    rebuilt.load_state_dict({**state, "unembed.W_U": state["embed.W_E"].T}, strict=False)
    exported = load_model_dir(world / "model")
    tokens = exported.to_tokens(["A circle is a shape.", "Then, Mary and John went to the"])
    with torch.no_grad():
        torch.testing.assert_close(exported(tokens), rebuilt(tokens), rtol=0, atol=1e-5)

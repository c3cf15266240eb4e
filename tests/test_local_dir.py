import json

import pytest
import torch

from circuitforge.model.local_dir import CorruptModelDirError, load_model_dir, save_model_dir
from circuitforge.model.spec import FrozenModelSpec, freeze, load_frozen_model
from tests.conftest import DEMO_MODEL


def test_saved_directory_gives_the_same_logits(demo_model, tmp_path):
    tokens = demo_model.to_tokens("A circle is a shape with equal sides .")
    save_model_dir(demo_model, tmp_path / "copy")
    loaded = freeze(load_model_dir(tmp_path / "copy"))  # the same forward as load_frozen_model
    assert torch.equal(loaded(tokens), demo_model(tokens))
    assert loaded.to_tokens("<pad> <pad> <pad> x").tolist() == (
        demo_model.to_tokens("<pad> <pad> <pad> x").tolist()
    )


def test_random_config_model_round_trips(tmp_path):
    cfg = dict(n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=50, n_ctx=16,
               act_fn="gelu", normalization_type="LN")  # fmt: skip
    model = load_frozen_model(FrozenModelSpec(config=cfg, seed=3))
    save_model_dir(model, tmp_path / "m")
    tokens = torch.randint(0, 50, (2, 7))
    assert torch.equal(freeze(load_model_dir(tmp_path / "m"))(tokens), model(tokens))


def test_tampered_weights_are_refused(tmp_path, demo_model):
    directory = save_model_dir(demo_model, tmp_path / "m")
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptModelDirError, match="sha256"):
        load_model_dir(directory)


def test_truncated_file_and_missing_manifest_are_refused(tmp_path, demo_model):
    directory = save_model_dir(demo_model, tmp_path / "m")
    (directory / "tokenizer.json").write_text("{}")
    with pytest.raises(CorruptModelDirError):
        load_model_dir(directory)
    (directory / "manifest.json").unlink()
    with pytest.raises(CorruptModelDirError, match="manifest"):
        load_model_dir(directory)


def test_shipped_manifest_lists_every_file():
    listed = set(json.loads((DEMO_MODEL / "manifest.json").read_text()))
    present = {p.name for p in DEMO_MODEL.iterdir()} - {"manifest.json"}
    assert listed == present

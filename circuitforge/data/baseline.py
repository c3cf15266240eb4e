"""The residual baseline: mean (and typical norm) of `blocks.{S}.hook_resid_pre` at the last
token of the first N documents, each cut to its last `window` tokens and left-padded.

It initialises X and is the contrast of the Patchscope decoding. It is cached on disk per
(model, layer, corpus and its content hash, window), so a resumed run does not recompute it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuitforge.atomic_files import torch_save_atomically
from circuitforge.model import hooks
from circuitforge.model.forward import embed, run_blocks


@dataclass
class ResidualBaseline:
    mean: Float[Tensor, " d_model"]
    typical_norm: float  # mean of the per-document norms
    n_documents: int
    hook_name: str


def last_token_windows(
    model: HookedTransformer, texts: list[str], window: int, prepend_bos: bool
) -> tuple[Int[Tensor, "n window"], Int[Tensor, "n window"]]:
    """Each text's last `window` tokens (after an optional BOS), left-padded, with the mask."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("the model has no tokenizer; texts cannot be tokenized")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokens = torch.full((len(texts), window), pad, dtype=torch.long)
    mask = torch.zeros((len(texts), window), dtype=torch.long)
    for row, text in enumerate(texts):
        ids = model.to_tokens(text, prepend_bos=False, truncate=False)[0].tolist()
        keep = ids[-(window - int(prepend_bos)) :] if window > int(prepend_bos) else []
        ids = ([tokenizer.bos_token_id] if prepend_bos else []) + keep
        if not ids:
            raise ValueError(f"document {row} tokenizes to nothing")
        tokens[row, window - len(ids) :] = torch.tensor(ids)
        mask[row, window - len(ids) :] = 1
    return tokens, mask


@torch.no_grad()
def compute_baseline(
    model: HookedTransformer,
    texts: list[str],
    layer: int,
    window: int = 32,
    prepend_bos: bool = False,
    batch_size: int = 8,
) -> ResidualBaseline:
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer {layer} out of range: the model has {model.cfg.n_layers} layers")
    tokens, mask = last_token_windows(model, texts, window, prepend_bos)
    last = []
    for start in tqdm(range(0, len(texts), batch_size), desc=f"baseline resid_pre {layer}"):
        batch = tokens[start : start + batch_size].to(model.cfg.device)
        batch_mask = mask[start : start + batch_size].to(model.cfg.device)
        residual, batch_mask = embed(model, batch, batch_mask)
        residual = run_blocks(model, residual, 0, layer, batch_mask)
        last.append(residual[:, -1].float().cpu())
    stacked = torch.cat(last)
    return ResidualBaseline(
        mean=stacked.mean(0),
        typical_norm=float(stacked.norm(dim=-1).mean()),
        n_documents=len(texts),
        hook_name=hooks.resid_pre(layer),
    )


class BaselineCache:
    """Baselines on disk, one file per (model identity, layer, corpus, window, bos)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()

    def path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return self.directory / f"baseline-{digest}.pt"

    def load(self, key: dict) -> ResidualBaseline | None:
        path = self.path(key)
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") != key:
            return None
        return ResidualBaseline(**saved["baseline"])

    def save(self, key: dict, baseline: ResidualBaseline) -> Path:
        saved = {"key": key, "baseline": asdict(baseline)}
        return torch_save_atomically(self.path(key), saved)

"""The residual baseline: mean (and typical norm) of `blocks.{S}.hook_resid_pre` at the last
token of the first N documents, each cut to its last `window` tokens and left-padded.

The seed study's baseline of the gradient Patchscope (`baseline: {corpus: ...}`,
`circuitforge/patchscope/baseline.py`): it initialises X and is the contrast of the decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuitforge.model import hooks
from circuitforge.model.forward import embed, run_blocks
from circuitforge.model.tokenizer import maybe_token_id


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
    pad = maybe_token_id(tokenizer, "pad") or 0
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

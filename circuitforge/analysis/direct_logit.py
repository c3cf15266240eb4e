"""Direct logit attribution: what each head and MLP writes, read straight through to the logits.

At the read position the final residual is a sum of pieces: the embedding (and positional
embedding), every head's output, each layer's attention bias, every MLP's output. With the final
norm's scale frozen at its value on this prompt, the norm is linear (LayerNorm also centres),
so each piece's share of a logit (or of a logit difference) is

    share(piece) = (centre(piece) / scale * w_final) . (W_U[:, answer] - W_U[:, wrong])

and the shares plus the constant (final-norm bias and unembedding bias along the same
direction) sum exactly to the logit difference before any output soft-cap.

Post-norm blocks (Gemma-2 RMS-normalises each attention output before adding it): a head's piece
is its output divided by that norm's frozen scale, times its weight, as in the edge graph.

Gemma-2's logit soft-cap (`cap * tanh(x / cap)`, cap 30) comes after the unembedding and is not
linear, so no sum of per-piece shares can equal the capped difference. We decompose the logits
*before* the cap (`before_softcap`, the exact sum) and report the model's capped difference
beside it. The cap is monotone per token; it shrinks large logits, not their order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.analysis.runs import capture, read_rows, token_logits
from circuitforge.edges.masked_forward import head_outputs

Target = Literal["logit_difference", "answer"]


@dataclass
class DirectLogitAttribution:
    names: list[str]  # the pieces, in model order: embed, [pos_embed], L.H ..., [L.attn_bias], mL
    shares: Float[Tensor, "batch piece"]
    constant: Float[Tensor, " batch"]  # final-norm bias and unembedding bias
    before_softcap: Float[Tensor, " batch"]  # shares.sum(-1) + constant, the exact total
    model_value: Float[Tensor, " batch"]  # what the model outputs (after any soft-cap)


def _hook_names(model: HookedTransformer) -> list[str]:
    cfg = model.cfg
    names = ["blocks.0.hook_resid_pre"]
    if cfg.positional_embedding_type == "standard":
        names.append("hook_pos_embed")
    for layer in range(cfg.n_layers):
        names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_attn_out"]
        if cfg.use_normalization_before_and_after:
            names.append(f"blocks.{layer}.ln1_post.hook_scale")
        if not cfg.attn_only:
            names.append(f"blocks.{layer}.hook_mlp_out")
    return names


def residual_pieces(
    model: HookedTransformer, cache: dict[str, Tensor], read: Tensor
) -> tuple[list[str], Float[Tensor, "batch piece d_model"]]:
    """The pieces of the final residual at each pair's read position."""
    cfg = model.cfg
    if cfg.positional_embedding_type == "shortformer":
        raise NotImplementedError("direct logit attribution: shortformer positions unsupported")
    at = {name: read_rows(act, read) for name, act in cache.items()}
    names, pieces = ["embed"], [at["blocks.0.hook_resid_pre"]]
    if "hook_pos_embed" in at:
        pieces[0] = pieces[0] - at["hook_pos_embed"]
        names.append("pos_embed")
        pieces.append(at["hook_pos_embed"])
    post_norm = bool(cfg.use_normalization_before_and_after)
    for layer in range(cfg.n_layers):
        z = at[f"blocks.{layer}.attn.hook_z"]  # [batch, head, d_head]
        scale = at[f"blocks.{layer}.ln1_post.hook_scale"][:, None] if post_norm else None
        heads = head_outputs(model, layer, z[:, None], scale)[:, 0]  # [batch, head, d_model]
        names += [f"{layer}.{h}" for h in range(cfg.n_heads)]
        pieces += list(heads.unbind(1))
        if not post_norm:  # post-norm: the bias is inside the heads' share (b_O / n_heads)
            names.append(f"{layer}.attn_bias")
            pieces.append(model.blocks[layer].attn.b_O.expand_as(pieces[0]))
        if not cfg.attn_only:
            names.append(f"m{layer}")
            pieces.append(at[f"blocks.{layer}.hook_mlp_out"])
    stacked = torch.stack([p.to(pieces[0].device, pieces[0].dtype) for p in pieces], dim=1)
    return names, stacked


def direct_logit_attribution(
    model: HookedTransformer, batch: dict, target: Target = "logit_difference"
) -> DirectLogitAttribution:
    """Shares of the logit difference (answer - wrong answer), or of the answer's logit, at the
    read position of each clean prompt."""
    if target not in ("logit_difference", "answer"):
        raise ValueError(f"target must be logit_difference or answer, got {target!r}")
    if (batch["answer"] < 0).any():
        raise ValueError("direct logit attribution needs answer tokens; this task has none")
    cache, residual = capture(model, batch["clean"], _hook_names(model))
    final = read_rows(residual, batch["read"])
    names, pieces = residual_pieces(model, cache, batch["read"])
    if not torch.allclose(pieces.sum(1).float(), final.float(), atol=1e-3, rtol=1e-3):
        gap = (pieces.sum(1) - final).abs().max().item()
        raise RuntimeError(f"the pieces do not sum to the final residual (max gap {gap:.3g})")

    columns = batch["answer"][:, None]
    if target == "logit_difference":
        columns = torch.stack([batch["answer"], batch["wrong_answer"]], dim=1)
    columns = columns.to(model.W_U.device)
    sign = torch.tensor([1.0, -1.0][: columns.shape[1]], device=columns.device)
    direction = torch.einsum("dbk,k->bd", model.W_U[:, columns].float(), sign)
    bias_u = (model.b_U[columns].float() * sign).sum(-1)

    pieces, final = pieces.to(direction.device).float(), final.to(direction.device).float()
    norm = model.ln_final if model.cfg.normalization_type is not None else None
    if norm is not None and model.cfg.normalization_type in ("LN", "LNPre"):
        pieces = pieces - pieces.mean(-1, keepdim=True)
    scale = _final_scale(model, final) if norm is not None else torch.ones_like(final[:, :1])
    weight = getattr(norm, "w", None)
    reads = direction * (weight.float() if weight is not None else 1.0) / scale  # [batch, d]
    shares = torch.einsum("bpd,bd->bp", pieces, reads)
    norm_bias = getattr(norm, "b", None)
    constant = bias_u + (direction @ norm_bias.float() if norm_bias is not None else 0.0)
    model_value = (token_logits(model, final, columns).float() * sign).sum(-1)
    return DirectLogitAttribution(
        names, shares, constant, shares.sum(-1) + constant, model_value.detach()
    )


def _final_scale(model: HookedTransformer, final: Tensor) -> Float[Tensor, "batch 1"]:
    """The final norm's scale on these residuals (read from its own hook: frozen from here)."""
    store = {}
    with model.hooks(fwd_hooks=[("ln_final.hook_scale", lambda a, hook: store.update(s=a))]):
        model.ln_final(final[:, None].to(model.W_U.dtype))
    return store["s"][:, 0].float()

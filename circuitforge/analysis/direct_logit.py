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
from circuitforge.batches import PairBatch
from circuitforge.model import hooks
from circuitforge.model.internals import (
    attention_bias,
    final_norm_centres,
    final_norm_scale,
    final_norm_weights,
    has_post_attention_norm,
    head_outputs,
)

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
    names = [hooks.resid_pre(0)]
    if cfg.positional_embedding_type == "standard":
        names.append(hooks.POS_EMBED)
    for layer in range(cfg.n_layers):
        names += [hooks.attn_z(layer), hooks.attn_out(layer)]
        if has_post_attention_norm(model):
            names.append(hooks.ln1_post_scale(layer))
        if not cfg.attn_only:
            names.append(hooks.mlp_out(layer))
    return names


def residual_pieces(
    model: HookedTransformer, cache: dict[str, Tensor], read: Tensor
) -> tuple[list[str], Float[Tensor, "batch piece d_model"]]:
    """The pieces of the final residual at each pair's read position."""
    cfg = model.cfg
    if cfg.positional_embedding_type == "shortformer":
        raise NotImplementedError("direct logit attribution: shortformer positions unsupported")
    at = {name: read_rows(act, read) for name, act in cache.items()}
    names, pieces = ["embed"], [at[hooks.resid_pre(0)]]
    if hooks.POS_EMBED in at:
        pieces[0] = pieces[0] - at[hooks.POS_EMBED]
        names.append("pos_embed")
        pieces.append(at[hooks.POS_EMBED])
    post_norm = has_post_attention_norm(model)
    for layer in range(cfg.n_layers):
        z = at[hooks.attn_z(layer)]  # [batch, head, d_head]
        scale = at[hooks.ln1_post_scale(layer)][:, None] if post_norm else None
        heads = head_outputs(model, layer, z[:, None], scale)[:, 0]  # [batch, head, d_model]
        names += [f"{layer}.{h}" for h in range(cfg.n_heads)]
        pieces += list(heads.unbind(1))
        if not post_norm:  # post-norm: the bias is inside the heads' share (b_O / n_heads)
            names.append(f"{layer}.attn_bias")
            pieces.append(attention_bias(model, layer).expand_as(pieces[0]))
        if not cfg.attn_only:
            names.append(f"m{layer}")
            pieces.append(at[hooks.mlp_out(layer)])
    stacked = torch.stack([p.to(pieces[0].device, pieces[0].dtype) for p in pieces], dim=1)
    return names, stacked


def rounding_tolerance(
    pieces: Float[Tensor, "batch piece d_model"],
    final: Float[Tensor, "batch d_model"],
    additions: int,
) -> Float[Tensor, " batch"]:
    """How far (L2, per prompt) a bf16/fp16 model's final residual may sit from its pieces' exact
    sum. The model rounds its running residual after each of its `additions` (two per block), by
    up to eps/2 of its size, and each piece was computed in that precision, so the two differ by
    rounding, not by a missing piece: 4 x eps/2 sqrt(additions) ||final|| (a random walk of
    roundings, 4x margin) + eps sqrt(sum_k ||piece_k||^2). On the demo model in bf16 the gap is
    about a tenth of this."""
    eps = torch.finfo(pieces.dtype).eps
    walk = 2 * eps * additions**0.5 * final.float().norm(dim=-1)
    return walk + eps * pieces.float().norm(dim=-1).norm(dim=-1)


def check_pieces_sum(
    pieces: Float[Tensor, "batch piece d_model"],
    final: Float[Tensor, "batch d_model"],
    n_layers: int,
) -> None:
    """Refuse a decomposition whose pieces (summed in fp32) miss the final residual. fp32 and
    wider: within 1e-3 per element (absolute and relative). bf16/fp16: within the rounding the
    precision allows (`rounding_tolerance`), so a missing piece is caught when its norm exceeds
    that (in bf16 with 4 blocks about 5% of the final residual's norm)."""
    total, final = pieces.float().sum(1), final.float()
    if torch.finfo(pieces.dtype).bits >= 32:
        if not torch.allclose(total, final, atol=1e-3, rtol=1e-3):
            gap = (total - final).abs().max().item()
            raise RuntimeError(f"the pieces do not sum to the final residual (max gap {gap:.3g})")
        return
    gap = (total - final).norm(dim=-1)
    allowed = rounding_tolerance(pieces, final, additions=2 * n_layers)
    if (gap > allowed).any():
        worst = int((gap / allowed).argmax())
        raise RuntimeError(
            f"the pieces do not sum to the final residual: prompt {worst} misses it by "
            f"{gap[worst].item():.3g} (L2), more than {pieces.dtype}'s rounding allows "
            f"({allowed[worst].item():.3g})"
        )


def direct_logit_attribution(
    model: HookedTransformer, batch: PairBatch, target: Target = "logit_difference"
) -> DirectLogitAttribution:
    """Shares of the logit difference (answer - wrong answer), or of the answer's logit, at the
    read position of each clean prompt."""
    if target not in ("logit_difference", "answer"):
        raise ValueError(f"target must be logit_difference or answer, got {target!r}")
    if (batch.answer < 0).any():
        raise ValueError("direct logit attribution needs answer tokens; this task has none")
    cache, residual = capture(model, batch.clean, _hook_names(model))
    final = read_rows(residual, batch.read)
    names, pieces = residual_pieces(model, cache, batch.read)
    check_pieces_sum(pieces, final, model.cfg.n_layers)

    columns = batch.answer[:, None]
    if target == "logit_difference":
        columns = torch.stack([batch.answer, batch.wrong_answer], dim=1)
    columns = columns.to(model.W_U.device)
    sign = torch.tensor([1.0, -1.0][: columns.shape[1]], device=columns.device)
    direction = torch.einsum("dbk,k->bd", model.W_U[:, columns].float(), sign)
    bias_u = (model.b_U[columns].float() * sign).sum(-1)

    pieces, final = pieces.to(direction.device).float(), final.to(direction.device).float()
    if final_norm_centres(model):
        pieces = pieces - pieces.mean(-1, keepdim=True)
    scale = final_norm_scale(model, final)
    weight, norm_bias = final_norm_weights(model)
    reads = direction * (weight.float() if weight is not None else 1.0) / scale  # [batch, d]
    shares = torch.einsum("bpd,bd->bp", pieces, reads)
    constant = bias_u + (direction @ norm_bias.float() if norm_bias is not None else 0.0)
    model_value = (token_logits(model, final, columns).float() * sign).sum(-1)
    return DirectLogitAttribution(
        names, shares, constant, shares.sum(-1) + constant, model_value.detach()
    )

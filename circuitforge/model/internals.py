"""What graph and analysis code reads inside a HookedTransformer besides its hooks.

Beside `forward.py` (which runs the model in pieces), this is the one file that reads
TransformerLens' attention internals: the per-head output matrices `W_O` and bias `b_O`, the
post-attention norm (`ln1_post`, Gemma-2) that rescales the heads' sum, the final norm, and the
`cfg` flags that turn on extra hook points (flipped only inside a `with` block, and restored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.model.hooks import FINAL_NORM_SCALE


@contextmanager
def _flags(model: HookedTransformer, values: dict[str, bool]) -> Iterator[None]:
    cfg = model.cfg
    saved = {name: getattr(cfg, name) for name in values}
    for name, value in values.items():
        setattr(cfg, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(cfg, name, value)


@contextmanager
def edge_hook_points(model: HookedTransformer, attn_result: bool = False) -> Iterator[None]:
    """Turn on one Q/K/V input hook per head (`hook_{q,k,v}_input`, ungrouped under grouped-query
    attention), `hook_mlp_in` and (when `attn_result`) `attn.hook_result`; restored after."""
    values = {
        "use_split_qkv_input": True,
        "ungroup_grouped_query_attention": True,
        "use_attn_result": attn_result,
    }
    if not model.cfg.attn_only:
        values["use_hook_mlp_in"] = True
    with _flags(model, values):
        yield


@contextmanager
def ungrouped_heads(model: HookedTransformer, needed: bool) -> Iterator[None]:
    """One key/value hook slot per query head (`attn.hook_k/v`) under grouped-query attention,
    while `needed`; the flag is restored after."""
    saved = model.cfg.ungroup_grouped_query_attention
    with _flags(model, {"ungroup_grouped_query_attention": saved or needed}):
        yield


def has_post_attention_norm(model: HookedTransformer) -> bool:
    """Whether each block normalises its attention output before adding it (Gemma-2)."""
    return bool(model.cfg.use_normalization_before_and_after)


def head_output_weights(
    model: HookedTransformer, layer: int
) -> Float[Tensor, "head d_head d_model"]:
    """`W_O` of `layer`: head h writes `z_h @ W_O[h]`."""
    return model.blocks[layer].attn.W_O


def attention_bias(model: HookedTransformer, layer: int) -> Float[Tensor, " d_model"]:
    """`b_O` of `layer`: added once to the heads' sum (no head owns it)."""
    return model.blocks[layer].attn.b_O


def normalised_head_outputs(
    model: HookedTransformer,
    layer: int,
    outputs: Float[Tensor, "batch pos head d_model"],
    scale: Float[Tensor, "batch pos 1"],
) -> Float[Tensor, "batch pos head d_model"]:
    """Post-norm blocks: each head's share of the normalised attention output,
    `(out_h + b_O / H) / scale * w` with the post-attention norm's scale frozen at `scale`."""
    bias = attention_bias(model, layer) / model.cfg.n_heads
    return (outputs + bias) / scale.unsqueeze(-2) * model.blocks[layer].ln1_post.w


def head_outputs(
    model: HookedTransformer,
    layer: int,
    z: Float[Tensor, "batch pos head d_head"],
    scale: Float[Tensor, "batch pos 1"] | None,
) -> Float[Tensor, "batch pos head d_model"]:
    """What each head of `layer` adds to the residual stream: `z_h @ W_O[h]`, or (post-norm,
    `scale` given) its share of the normalised sum (see `normalised_head_outputs`)."""
    out = torch.einsum("bphk,hkd->bphd", z, head_output_weights(model, layer))
    if scale is None:
        return out
    return normalised_head_outputs(model, layer, out, scale)


def final_norm(
    model: HookedTransformer, residual: Float[Tensor, "batch pos d_model"]
) -> Float[Tensor, "batch pos d_model"]:
    """The final norm (`ln_final`) as the model applies it; the identity when it has none."""
    if model.cfg.normalization_type is None:
        return residual
    return model.ln_final(residual)


def final_norm_centres(model: HookedTransformer) -> bool:
    """Whether the final norm subtracts the mean (LayerNorm) before scaling."""
    return model.cfg.normalization_type in ("LN", "LNPre")


def final_norm_weights(model: HookedTransformer) -> tuple[Tensor | None, Tensor | None]:
    """(weight, bias) of the final norm, each None where it has none (or there is no norm)."""
    if model.cfg.normalization_type is None:
        return None, None
    return getattr(model.ln_final, "w", None), getattr(model.ln_final, "b", None)


def final_norm_scale(
    model: HookedTransformer, final: Float[Tensor, "batch d_model"]
) -> Float[Tensor, "batch 1"]:
    """The final norm's scale on these residuals (read from its own hook: frozen from here);
    ones when the model has no final norm."""
    if model.cfg.normalization_type is None:
        return torch.ones_like(final[:, :1])
    store = {}
    with model.hooks(fwd_hooks=[(FINAL_NORM_SCALE, lambda a, hook: store.update(s=a))]):
        model.ln_final(final[:, None].to(model.W_U.dtype))
    return store["s"][:, 0].float()


def mlp_width(model: HookedTransformer) -> int:
    """The MLP's hidden width (`cfg.d_mlp`; None only for attention-only models)."""
    if model.cfg.d_mlp is None:
        raise ValueError(f"model {model.cfg.model_name!r} has no MLPs")
    return model.cfg.d_mlp


def neuron_output_weights(model: HookedTransformer, layer: int) -> Float[Tensor, "d_mlp d_model"]:
    """`W_out` of `layer`'s MLP: neuron n writes `post_n * W_out[n]` (before any post-MLP norm)."""
    return model.blocks[layer].mlp.W_out


def post_mlp_norm(
    model: HookedTransformer, layer: int, out: Float[Tensor, "... d_model"]
) -> Float[Tensor, "... d_model"]:
    """The norm a post-norm block (Gemma-2/3: `ln2_post`) applies to the MLP's output before it
    joins the residual stream, applied to `out` as the model applies it; the identity for blocks
    without one."""
    if not has_post_attention_norm(model):
        return out
    return model.blocks[layer].ln2_post(out)

"""The forward pass of a frozen HookedTransformer, in pieces, following where each block lives.

With `internals.py` (the attention weights, norms and `cfg` hook flags that graph code reads)
and `hooks.py` (every hook name), this is the one place that reaches into TransformerLens' model
internals (`input_to_embed`, `blocks`, `unembed`, the KV cache), so a move to `TransformerBridge`
touches only these three files.
Every function moves the residual to the device of the block it enters, so a model split over
several devices by `placement.place_model` runs correctly, whatever devices the plan names.
"""

from __future__ import annotations

import weakref

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.utilities.activation_functions import apply_softcap

from circuitforge.model.internals import final_norm


def block_device(model: HookedTransformer, layer: int) -> torch.device:
    return next(model.blocks[layer].parameters()).device


def output_device(model: HookedTransformer) -> torch.device:
    return next(model.unembed.parameters()).device


def embed(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    kv_cache: TransformerLensKeyValueCache | None = None,
) -> tuple[Float[Tensor, "batch pos d_model"], Tensor | None]:
    """Token (and positional) embedding: the residual stream before block 0, and the mask."""
    residual, _, shortformer, mask = model.input_to_embed(
        tokens, attention_mask=attention_mask, past_kv_cache=kv_cache
    )
    if shortformer is not None:
        raise NotImplementedError("shortformer positional embeddings are not supported")
    return residual, mask


def run_blocks(
    model: HookedTransformer,
    residual: Float[Tensor, "batch pos d_model"],
    start: int,
    stop: int,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    kv_cache: TransformerLensKeyValueCache | None = None,
) -> Float[Tensor, "batch pos d_model"]:
    """Run blocks `start..stop-1` on `residual` (= `hooks.resid_pre(start)`).

    Returns `hooks.resid_post(stop - 1)`. Hooks on these blocks fire as in a full run.
    """
    if not 0 <= start <= stop <= model.cfg.n_layers:
        raise ValueError(f"blocks {start}..{stop} out of range for {model.cfg.n_layers} layers")
    for i in range(start, stop):
        device = block_device(model, i)
        residual = residual.to(device)
        mask = None if attention_mask is None else attention_mask.to(device)
        entry = None if kv_cache is None else kv_cache[i]
        residual = model.blocks[i](residual, past_kv_cache_entry=entry, attention_mask=mask)
    return residual


def unembed(
    model: HookedTransformer, residual: Float[Tensor, "batch pos d_model"]
) -> Float[Tensor, "batch pos d_vocab"]:
    residual = final_norm(model, residual.to(output_device(model)))
    return apply_softcap(model.unembed(residual), model.cfg.output_logits_soft_cap)


def contrastive_unembed(
    model: HookedTransformer,
    residual: Float[Tensor, "batch pos d_model"],
    against: Float[Tensor, "batch pos d_model"],
    alpha: float,
) -> Float[Tensor, "batch pos d_vocab"]:
    """`(1 + alpha) * unembed(residual) - alpha * unembed(against)` with one unembedding: the
    unembedding is affine (its bias counts (1 + alpha) - alpha = 1 times), so this is the
    unembedding of the same mix of the two final-normed residuals, the same logits up to
    rounding for half the work on the vocabulary. With a logit softcap (not affine) the two are
    unembedded separately: the same function."""
    if model.cfg.output_logits_soft_cap > 0:
        return (1 + alpha) * unembed(model, residual) - alpha * unembed(model, against)
    device = output_device(model)
    normed = final_norm(model, residual.to(device))
    return model.unembed((1 + alpha) * normed - alpha * final_norm(model, against.to(device)))


def greedy_tokens(
    model: HookedTransformer,
    residual: Float[Tensor, "batch d_model"],
    against: Float[Tensor, "batch d_model"] | None = None,
    alpha: float = 0.0,
) -> Int[Tensor, " batch"]:
    """The argmax token of `unembed(residual)`, or with `against` of the contrastive mix
    `(1 + alpha) * unembed(residual) - alpha * unembed(against)` (one unembedding of the mixed
    final-normed residuals, `contrastive_unembed`). Only the argmax is needed, so the softcap
    (monotone) is left out, and so is the bias where it is zero (Gemma's): the product alone,
    in autocast's dtype (a kept cast, `autocast_weight`), without an fp32 copy of the logits.
    The same tokens as the argmax of `unembed` up to the rounding of the mix. The unembedding's
    hooks do not fire."""
    device = output_device(model)
    if against is not None and model.cfg.output_logits_soft_cap > 0:  # not affine
        return contrastive_unembed(model, residual, against, alpha).argmax(-1)
    normed = final_norm(model, residual.to(device))
    if against is not None:
        normed = (1 + alpha) * normed - alpha * final_norm(model, against.to(device))
    w_u = autocast_weight(model.unembed.W_U, kept_casts(model.unembed))
    scores = torch.matmul(normed, w_u)
    bias = model.unembed.b_U
    return (scores + bias if bool(bias.any()) else scores).argmax(-1)


def forward_logits(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    kv_cache: TransformerLensKeyValueCache | None = None,
) -> Float[Tensor, "batch pos d_vocab"]:
    """The whole model: equal to `model(tokens)` on one device, and correct across devices."""
    residual, mask = embed(model, tokens, attention_mask, kv_cache)
    residual = run_blocks(model, residual, 0, model.cfg.n_layers, mask, kv_cache)
    return unembed(model, residual)


def new_kv_cache(model: HookedTransformer, batch_size: int) -> TransformerLensKeyValueCache:
    """An empty KV cache whose entry for each layer lives on that layer's device."""
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, batch_size)
    for layer, entry in enumerate(cache.entries):
        device = block_device(model, layer)
        entry.past_keys = entry.past_keys.to(device)
        entry.past_values = entry.past_values.to(device)
    return cache


def shared_prefix_cache(
    cache: TransformerLensKeyValueCache, batch_size: int
) -> TransformerLensKeyValueCache:
    """A frozen view of a one-row KV cache for `batch_size` rows: every row attends to the same
    cached keys and values (a prompt prefix computed once), and the forward it is given to
    leaves it unchanged (no copy of the cache per row)."""
    rows = cache.previous_attention_mask.shape[0]
    if rows != 1:
        raise ValueError(f"shared_prefix_cache: give a one-row cache, got {rows} rows")
    entries = [
        TransformerLensKeyValueCacheEntry(
            e.past_keys.expand(batch_size, -1, -1, -1),
            e.past_values.expand(batch_size, -1, -1, -1),
            frozen=True,
        )
        for e in cache.entries
    ]
    mask = cache.previous_attention_mask.expand(batch_size, -1)
    return TransformerLensKeyValueCache(entries, mask, frozen=True)


_KEPT: weakref.WeakKeyDictionary[torch.nn.Module, dict] = weakref.WeakKeyDictionary()


def kept_casts(module: torch.nn.Module) -> dict:
    """The kept weight casts of `module` (`autocast_weight`), alive as long as it is."""
    return _KEPT.setdefault(module, {})


def autocast_weight(weight: Tensor, kept: dict) -> Tensor:
    """`weight` as autocast casts it for a matmul, cast once and kept in `kept`.

    Autocast caches its casts only of weights that require grad, so on a frozen model it casts
    every matrix again at every call: for Gemma-3-270M's 262k x 640 unembedding that costs more
    than the bf16 product itself. The product of the kept copy is the same as autocast's (both
    operands in the autocast dtype); outside autocast, or for a weight not in fp32, `weight`
    itself. A weight changed in place (its version) is cast again.
    """
    device = weight.device.type
    if weight.dtype != torch.float32 or not torch.is_autocast_enabled(device):
        return weight
    dtype = torch.get_autocast_dtype(device)
    key = (dtype, weight.data_ptr(), weight._version)
    if key not in kept:
        kept.clear()  # one copy at a time
        kept[key] = weight.detach().to(dtype)
    return kept[key]


def unembed_without_copy(model: HookedTransformer) -> HookedTransformer:
    """Make `model.unembed` multiply by W_U as it is stored.

    TransformerLens 3.9's `Unembed.forward` runs `F.linear(x, W_U.T.contiguous())`, a copy of the
    whole d_model x d_vocab matrix on every call: about 0.7 s of a 1 s Gemma-3-270M forward
    (262k vocabulary). This replaces that module's forward, on this instance only, by the same
    product without the copy; the hooks `unembed.hook_in`/`hook_out` fire as before. Under
    autocast it multiplies by a kept cast of W_U (`autocast_weight`).
    """
    unembed = model.unembed
    kept = kept_casts(unembed)  # greedy_tokens multiplies by the same kept cast

    def forward(residual: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        residual = unembed.hook_in(residual)
        w_u = autocast_weight(unembed.W_U, kept)
        return unembed.hook_out(torch.matmul(residual, w_u) + unembed.b_U)

    unembed.forward = forward
    return model


def gated_mlps_without_copies(model: HookedTransformer) -> HookedTransformer:
    """Make every gated MLP multiply by W_gate, W_in and W_out as they are stored.

    TransformerLens 3.9's `GatedMLP.forward` runs `F.linear(x, W.T.contiguous())` for each of its
    three matrices, a copy of all of them on every call (for bf16 parity with HF's layout):
    about 45% of a Gemma-3-270M decoding step on one CPU thread. This replaces the forward of
    each such module, on this instance only, by the same products without the copies; the
    hooks `hook_pre`, `hook_pre_linear` and `hook_post` fire as before. Under autocast they
    multiply by kept casts of the matrices (`autocast_weight`).
    """
    from transformer_lens.components.mlps.gated_mlp import GatedMLP

    for block in model.blocks:
        mlp = getattr(block, "mlp", None)  # attention-only models have none
        if type(mlp) is not GatedMLP or mlp.cfg.is_layer_norm_activation():
            continue

        def forward(x: Tensor, mlp: GatedMLP = mlp, kept: tuple = ({}, {}, {})) -> Tensor:
            if mlp.W_gate.device != x.device:
                x = x.to(mlp.W_gate.device)
            w_gate, w_in, w_out = (
                autocast_weight(w, k) for w, k in zip((mlp.W_gate, mlp.W_in, mlp.W_out), kept)
            )
            pre_act = mlp.hook_pre(torch.matmul(x, w_gate))
            pre_linear = mlp.hook_pre_linear(torch.matmul(x, w_in))
            post_act = mlp.hook_post(mlp.act_fn(pre_act) * pre_linear + mlp.b_in)
            return torch.matmul(post_act, w_out) + mlp.b_out

        mlp.forward = forward
    return model

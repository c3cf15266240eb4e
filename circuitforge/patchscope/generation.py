"""Patchscope decoding: greedy generation with a vector injected at the placeholder at prefill.

Contrastive decoding follows the seed study: two streams, one with X injected and one with the
baseline (mean) vector, each with its own KV cache, greedy on `(1+a)*logits_X - a*logits_mean`.
The plain decoding (greedy on `logits_X`) runs beside them for comparison. All three streams
for all B vectors run as one batch of 3B rows.

With `combined_unembed` the contrastive logits are one unembedding of the mixed final
residuals instead of two (`forward.greedy_tokens`): 2B rows of the vocabulary product a step
instead of 3B, and no fp32 copy of the logits (only their argmax is read); the same tokens up
to the rounding of the mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.model.forward import (
    embed,
    greedy_tokens,
    new_kv_cache,
    run_blocks,
    unembed,
)
from circuitforge.model.hooks import mlp_post, resid_pre
from circuitforge.model.tokenizer import decode
from circuitforge.patchscope.injection import prefill_injection_hook
from circuitforge.patchscope.prompt import PlaceholderPrompt


@dataclass
class PatchscopeDecoding:
    contrastive_tokens: list[list[int]]  # per vector
    plain_tokens: list[list[int]]
    contrastive_text: list[str]
    plain_text: list[str]
    prefill_activation: list[float]  # target neuron at the placeholder, X injected


@torch.no_grad()
def patchscope_decode(
    model: HookedTransformer,
    prompt: PlaceholderPrompt,
    source_layer: int,
    vectors: Float[Tensor, "batch d_model"],
    baseline: Float[Tensor, " d_model"],
    target_layer: int,
    neurons: list[int],
    alpha: float = 1.5,
    new_tokens: int = 20,
    combined_unembed: bool = False,
) -> PatchscopeDecoding:
    b = vectors.shape[0]
    rows = torch.cat([vectors, baseline.expand(b, -1).to(vectors), vectors])  # X | mean | X
    tokens = prompt.tokens.expand(3 * b, -1).to(model.cfg.device)
    mask = torch.ones_like(tokens)
    cache = new_kv_cache(model, 3 * b)
    prefill: dict[str, Tensor] = {}

    def observe(post: Tensor, hook) -> None:
        if "post" not in prefill:
            prefill["post"] = post[:b, prompt.position].float().cpu()

    hooks = [
        (resid_pre(source_layer), prefill_injection_hook(rows, prompt.position)),
        (mlp_post(target_layer), observe),
    ]

    def next_tokens(last: Float[Tensor, "rows 1 d_model"]) -> tuple[Tensor, Tensor]:
        """The contrastive and the plain stream's greedy tokens from the last residuals."""
        if combined_unembed:
            last = last[:, -1]
            mixed = greedy_tokens(model, last[:b], last[b : 2 * b], alpha)
            return mixed, greedy_tokens(model, last[2 * b :])
        logits = unembed(model, last)[:, -1].float()
        x, mean, p = logits[:b], logits[b : 2 * b], logits[2 * b :]
        return ((1 + alpha) * x - alpha * mean).argmax(-1), p.argmax(-1)

    contrastive, plain = [], []
    with model.hooks(fwd_hooks=hooks):
        residual, step_mask = embed(model, tokens, mask, cache)  # the prompt, into the cache
        for _ in range(new_tokens):
            residual = run_blocks(model, residual, 0, model.cfg.n_layers, step_mask, cache)
            next_c, next_p = next_tokens(residual[:, -1:])  # only the last position
            contrastive.append(next_c.cpu())
            plain.append(next_p.cpu())
            step = torch.cat([next_c, next_c, next_p])[:, None].to(tokens.device)
            residual, step_mask = embed(model, step, torch.ones_like(step), cache)
    c_tokens = torch.stack(contrastive, 1).tolist()
    p_tokens = torch.stack(plain, 1).tolist()
    tokenizer = model.tokenizer

    def text(ids: list[int]) -> str:
        return str(ids) if tokenizer is None else decode(tokenizer, ids)

    idx = torch.tensor(neurons)
    return PatchscopeDecoding(
        contrastive_tokens=c_tokens,
        plain_tokens=p_tokens,
        contrastive_text=[text(t) for t in c_tokens],
        plain_text=[text(t) for t in p_tokens],
        prefill_activation=prefill["post"].gather(1, idx[:, None])[:, 0].tolist(),
    )

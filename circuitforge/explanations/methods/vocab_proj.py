"""M4 VocabProj (Gur-Arieh et al., ACL 2025, "output-centric descriptions"): the neuron's output
weights read through the unembedding; E = the tokens with the largest logits.

As the paper's code does (`unembed(ln_final(W_out[n]))`, yoavgur/Feature-Descriptions), the row
`W_out[n]` goes through the final norm applied to it as to a residual, then the unembedding
(without its bias `b_U`: the same for every neuron, it would rank the frequent tokens first; the
paper's models have none). Gemma-2/3 blocks also normalise the MLP's output (`ln2_post`, an
RMSNorm) before it joins the residual stream; the paper's models have no such norm, so we apply
it the same way, first: logits = ln_final(ln2_post(W_out[n])) @ W_U. With RMS norms (Gemma-3:
tied embeddings, no biases) the logits rank tokens exactly as
(W_out[n] * w_ln2_post * w_ln_final) @ W_U, the direction the neuron writes as the unembedding
reads it; a norm's scale is one positive number per vector and changes no ranking. The paper
also hands the bottom tokens to its explainer LLM; a text read literally keeps only the top ones
(`bottom=True` takes the most suppressed tokens instead).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.explanations.methods.common import allowed_tokens, check_request, word_list
from circuitforge.model.internals import final_norm, neuron_output_weights, post_mlp_norm


@torch.no_grad()
def vocab_projection(
    model: HookedTransformer, layer: int, neurons: list[int]
) -> Float[Tensor, "neuron d_vocab"]:
    """ln_final(ln2_post(W_out[n])) @ W_U for each neuron (the norms only where the model
    has them), in fp32 on the CPU."""
    rows = neuron_output_weights(model, layer)[torch.tensor(neurons)]
    rows = post_mlp_norm(model, layer, rows[:, None])  # norms read [batch, pos, d_model]
    rows = final_norm(model, rows)[:, 0]
    logits = rows @ model.W_U
    return logits.float().cpu()


def explain_vocab_proj(
    model: HookedTransformer,
    layer: int,
    neurons: list[int],
    *,
    max_tokens: int = 24,
    candidates: int = 200,
    bottom: bool = False,
    ascii_only: bool = True,
) -> list[str]:
    """E = the top tokens of `vocab_projection` as words (decoded, stripped, repeats dropped),
    as many as fit in `max_tokens` tokens, chosen among the `candidates` best of the allowed
    tokens (`common.allowed_tokens`: printable ASCII words by default)."""
    check_request(model, layer, neurons, max_tokens)
    if candidates < 1:
        raise ValueError(f"vocab_proj: candidates must be >= 1, got {candidates}")
    logits = vocab_projection(model, layer, neurons)
    allowed = allowed_tokens(model, ascii_only)
    ranked = (-logits if bottom else logits).masked_fill(~allowed, float("-inf"))
    order = ranked.topk(min(candidates, int(allowed.sum()))).indices
    return [word_list(model, row.tolist(), max_tokens) for row in order]

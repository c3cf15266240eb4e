"""Fluency: E's own cross-entropy (mean nats per token of E after `<bos>`), to set against the
held-out corpus's (`held_out.token_surprisal` over its documents)."""

from __future__ import annotations

from transformer_lens import HookedTransformer

from circuitforge.explanations.benchmark.held_out import token_surprisal
from circuitforge.model.tokenizer import encode, maybe_token_id, tokenizer_of


def text_cross_entropy(model: HookedTransformer, texts: list[str]) -> list[float | None]:
    """Mean NLL per token of each text read after `<bos>`; None for a text of no tokens."""
    tokenizer = tokenizer_of(model)
    bos = maybe_token_id(tokenizer, "bos")
    head = [] if bos is None else [bos]
    ids = encode(tokenizer, texts, add_special_tokens=False)
    keep = [i for i, t in enumerate(ids) if len(t) >= (1 if head else 2)]
    out: list[float | None] = [None] * len(texts)
    if keep:
        rows = [head + ids[i] for i in keep]
        values = token_surprisal(model, rows, [len(head)] * len(rows))
        for i, v in zip(keep, values.tolist()):
            out[i] = v
    return out

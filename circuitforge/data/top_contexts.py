"""Where in a corpus a unit fires hardest: top-k (document, position) pairs of any activation.

A unit is anything read from one hook as `[batch pos] -> value`: an MLP neuron, or an SAE
feature of the residual stream. Documents run one per row, `<bos>` first, right-padded; padding
and `<bos>` are never counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.data.padding import right_padded
from circuitforge.model.tokenizer import decode, encode, maybe_token_id, token_id, tokenizer_of

UnitReader = Callable[[Float[Tensor, "batch pos d"]], Float[Tensor, "batch pos unit"]]


@dataclass(frozen=True)
class Context:
    activation: float
    document: int  # index into the documents given
    position: int  # token position (0 is <bos>)
    token: str
    text: str  # the document up to and including the token, the token in [brackets]


@torch.no_grad()
def top_contexts(
    model: HookedTransformer,
    documents: Sequence[str],
    hook_name: str,
    read: UnitReader,
    k: int = 10,
    batch_size: int = 64,
) -> list[list[Context]]:
    """For every unit `read` returns, its `k` strongest (document, position) activations."""
    tokenizer = tokenizer_of(model)
    pad, bos = token_id(tokenizer, "pad"), maybe_token_id(tokenizer, "bos")
    layer = int(hook_name.split(".")[1])
    best_values: Tensor | None = None
    best_index: Tensor | None = None  # flat (document, position) ids
    width = 0
    rows_all = []
    for start in range(0, len(documents), batch_size):
        ids = encode(tokenizer, documents[start : start + batch_size])
        rows_all.extend(ids)
        width = max(width, max(len(r) for r in ids))
    for start in range(0, len(rows_all), batch_size):
        rows = rows_all[start : start + batch_size]
        tokens = right_padded(rows, pad)  # this batch's width; ids below use the global one
        _, cache = model.run_with_cache(tokens, names_filter=hook_name, stop_at_layer=layer + 1)
        values = read(cache[hook_name]).float()  # [batch pos unit]
        ignore = (tokens == pad) | (tokens == bos) if bos is not None else tokens == pad
        values = values.masked_fill(ignore[..., None], -torch.inf)
        flat = values.flatten(0, 1)  # [(batch pos) unit]
        row, pos = torch.meshgrid(
            torch.arange(start, start + len(rows)), torch.arange(tokens.shape[1]), indexing="ij"
        )
        index = (row * width + pos).flatten()[:, None].expand(-1, flat.shape[1])
        if best_values is not None and best_index is not None:
            flat = torch.cat([best_values, flat])
            index = torch.cat([best_index, index])
        top = flat.topk(min(k, flat.shape[0]), dim=0)
        best_values, best_index = top.values, index.gather(0, top.indices)  # [k unit]
    assert best_values is not None and best_index is not None
    out = []
    for unit in range(best_values.shape[1]):
        contexts = []
        for value, flat_id in zip(best_values[:, unit].tolist(), best_index[:, unit].tolist()):
            doc, pos = divmod(flat_id, width)
            ids = rows_all[doc]
            words = [decode(tokenizer, [t]) for t in ids[1 : pos + 1]]
            words[-1] = f"[{words[-1]}]"
            contexts.append(
                Context(value, doc, pos, decode(tokenizer, [ids[pos]]), " ".join(words))
            )
        out.append(contexts)
    return out

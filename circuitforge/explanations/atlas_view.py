"""The observational side: a neuron's top contexts from the atlas, and the residual stream at
each context's trigger token, at the hook where the causal side injects X."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.atlas.documents import DocumentFormat
from circuitforge.atlas.vector_x import load_atlas
from circuitforge.data.padding import right_padded
from circuitforge.data.texts import load_texts
from circuitforge.model import hooks
from circuitforge.model.tokenizer import decode, maybe_token_id, tokenizer_of


@dataclass(frozen=True)
class AtlasView:
    layer: int
    neurons: dict[int, dict]  # neuron -> its atlas entry (activation, top_k contexts, ...)
    data: dict  # source, n_documents, text_field, max_tokens, prepend_bos

    def natural_max(self, neuron: int) -> float:
        return float(self.neurons[neuron]["activation"])

    def contexts(self, neuron: int) -> list[dict]:
        return self.neurons[neuron]["top_k"]


def read_atlas(path: str | Path, layer: int, d_mlp: int) -> AtlasView:
    """`atlas.json` (or the shipped `.json.gz`) of `blocks.{layer}.mlp.hook_post`, checked to
    profile that hook with one entry per neuron. A `*` in `path` picks the newest match."""
    path, atlas = load_atlas(path)
    hook = hooks.mlp_post(layer)
    if atlas.get("hook_name") != hook:
        raise ValueError(f"{path} profiles {atlas.get('hook_name')!r}, not {hook!r}")
    neurons = {int(k): v for k, v in atlas["neurons"].items()}
    if len(neurons) != d_mlp:
        raise ValueError(f"{path} has {len(neurons)} neurons; the model's MLP has {d_mlp}")
    return AtlasView(layer, neurons, atlas["data"])


@torch.no_grad()
def context_residuals(
    model: HookedTransformer,
    view: AtlasView,
    neurons: list[int],
    hook_name: str,
    batch_size: int = 32,
) -> dict[int, Float[Tensor, "context d_model"]]:
    """`hook_name` at the trigger token of each top context of each neuron (documents re-read as
    the atlas ran them; each document runs once, up to the hook's block)."""
    wanted = {c["text_index"] for n in neurons for c in view.contexts(n)}
    if not wanted:
        return {n: torch.zeros(0, model.cfg.d_model) for n in neurons}
    data = view.data
    texts = load_texts(data["source"], max(wanted) + 1, data.get("text_field", "text"))
    fmt = DocumentFormat(data["max_tokens"], data["prepend_bos"])
    order = sorted(wanted)
    tokenizer = tokenizer_of(model)
    ids = {i: fmt.token_ids(tokenizer, texts[i]) for i in order}
    positions: dict[int, set[int]] = {i: set() for i in order}  # the triggers read per document
    for n in neurons:
        for c in view.contexts(n):
            positions[c["text_index"]].add(c["token_position"])
    last = {i: max(p) for i, p in positions.items()}  # causal: later tokens change nothing
    order.sort(key=lambda i: last[i])  # batches of similar lengths: little padding
    layer = int(hook_name.split(".")[1])
    residual: dict[tuple[int, int], Tensor] = {}  # (document, position) -> the hook's vector
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        cut = {i: ids[i][: last[i] + 1] for i in chunk}
        tokens = right_padded([cut[i] for i in chunk], maybe_token_id(tokenizer, "pad") or 0)
        seen: dict[str, Tensor] = {}

        def keep(act: Tensor, hook, seen: dict = seen) -> None:
            seen["act"] = act.float().cpu()

        model.run_with_hooks(
            tokens.to(model.embed.W_E.device),
            fwd_hooks=[(hook_name, keep)],
            stop_at_layer=layer + 1,
        )
        for row, i in enumerate(chunk):  # only the trigger positions are kept
            for pos in positions[i]:
                if pos < len(cut[i]):  # else the trigger check below names the mismatch
                    residual[i, pos] = seen["act"][row, pos].clone()
    out = {}
    for n in neurons:
        rows = []
        for c in view.contexts(n):
            doc, pos = c["text_index"], c["token_position"]
            found = decode(tokenizer, [ids[doc][pos]]) if pos < len(ids[doc]) else None
            if found != c["trigger_token"]:
                raise ValueError(
                    f"neuron {n}: document {doc} of {data['source']} holds {found!r} at position "
                    f"{pos}, not the atlas's trigger {c['trigger_token']!r}: another corpus or "
                    "tokenizer than the atlas was made with"
                )
            rows.append(residual[doc, pos])
        out[n] = torch.stack(rows) if rows else torch.zeros(0, model.cfg.d_model)
    return out

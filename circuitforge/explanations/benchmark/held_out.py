"""Held-out text: documents the atlas did not use, and what the scores read off them.

- `HeldOut`: which documents (a source, the first index, how many, the token format); refused
  when they overlap the atlas's documents.
- `neuron_quantiles`: each neuron's q-quantile (99.9th) over every token of those documents but
  `<bos>`: the unit of S1 and S2.
- `Contexts`: windows of `window` tokens cut from them, each run alone as `<bos> + window`: every
  neuron's maximum on each (S4's top decile) and the model's surprisal of each (S4's baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.atlas.documents import DocumentFormat
from circuitforge.data.padding import right_padded
from circuitforge.data.texts import load_texts
from circuitforge.model import hooks
from circuitforge.model.tokenizer import maybe_token_id, tokenizer_of


@dataclass(frozen=True)
class HeldOut:
    """Documents start .. start + n_documents - 1 of `source`."""

    source: str
    start: int
    n_documents: int = 200
    max_tokens: int = 64
    text_field: str = "text"

    def __post_init__(self) -> None:
        if self.start < 0 or self.n_documents < 1 or self.max_tokens < 2:
            raise ValueError(
                f"held_out: start {self.start} >= 0, n_documents {self.n_documents} >= 1 and "
                f"max_tokens {self.max_tokens} >= 2 are needed"
            )

    def check_unused_by(self, atlas_data: dict) -> None:
        """Refuse documents the atlas read (the first `n_documents` of its own source)."""
        same = Path(self.source).resolve() == Path(atlas_data["source"]).resolve()
        used = int(atlas_data.get("n_documents") or 0)
        if same and self.start < used:
            raise ValueError(
                f"held_out.start {self.start}: the atlas read documents 0..{used - 1} of "
                f"{self.source}; held-out documents start at {used} or later"
            )

    def token_ids(self, model: HookedTransformer, extra: int = 0) -> list[list[int]]:
        """The documents (and `extra` more after them) as `<bos>` + their first tokens."""
        texts = load_texts(self.source, self.start + self.n_documents + extra, self.text_field)
        fmt = DocumentFormat(
            self.max_tokens, maybe_token_id(tokenizer_of(model), "bos") is not None
        )
        return [fmt.token_ids(tokenizer_of(model), t) for t in texts[self.start :]]


def _layer_rows(model, layer: int, rows: list[list[int]]) -> Float[Tensor, "row pos neuron"]:
    pad = maybe_token_id(tokenizer_of(model), "pad") or 0
    seen: dict[str, Tensor] = {}

    def keep(act: Tensor, hook) -> None:
        seen["post"] = act.float().cpu()

    tokens = right_padded(rows, pad).to(model.embed.W_E.device)
    model.run_with_hooks(tokens, fwd_hooks=[(hooks.mlp_post(layer), keep)], stop_at_layer=layer + 1)
    return seen["post"]


@torch.no_grad()
def neuron_quantiles(
    model: HookedTransformer, layer: int, documents: list[list[int]], q: float = 0.999,
    batch_size: int = 16,
) -> Float[Tensor, " neuron"]:  # fmt: skip
    """Each neuron's `q`-quantile (linear interpolation, as `torch.quantile`) over every real
    token of `documents` but the first (`<bos>`)."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    values = []
    for start in range(0, len(documents), batch_size):
        rows = documents[start : start + batch_size]
        post = _layer_rows(model, layer, rows)
        for i, r in enumerate(rows):
            values.append(post[i, 1 : len(r)])
    every = torch.cat(values)  # [token, neuron]
    if every.shape[0] == 0:
        raise ValueError("held-out documents hold no token after <bos>")
    columns = 2**24 // max(1, every.shape[0])  # torch.quantile's input limit
    return torch.cat(
        [
            torch.quantile(every[:, c : c + columns], q, dim=0)
            for c in range(0, every.shape[1], columns)
        ]
    )


@torch.no_grad()
def token_surprisal(
    model: HookedTransformer, rows: list[list[int]], first: list[int], batch_size: int = 4
) -> Float[Tensor, " row"]:
    """Per row, the mean negative log-probability of its tokens from position first[i] on,
    each given all tokens before it (the full model)."""
    pad = maybe_token_id(tokenizer_of(model), "pad") or 0
    out = []
    for start in range(0, len(rows), batch_size):
        part = rows[start : start + batch_size]
        tokens = right_padded(part, pad).to(model.embed.W_E.device)
        logits = model(tokens)[:, :-1].float()  # log-softmax at the targets only (memory)
        target = logits.gather(-1, tokens[:, 1:, None])[..., 0]
        nll = (logits.logsumexp(-1) - target).cpu()
        del logits
        for i, r in enumerate(part):
            f = max(1, first[start + i])
            out.append(
                nll[i, f - 1 : len(r) - 1].mean() if len(r) > f else torch.tensor(float("nan"))
            )
    return torch.stack(out)


@dataclass(frozen=True)
class Contexts:
    """S4's contexts: windows run alone as `<bos> + window`."""

    tokens: Int[Tensor, "context window"]  # without <bos>
    activation: Float[Tensor, "context neuron"]  # each neuron's max over the window's tokens
    surprisal: Float[Tensor, " context"]  # mean NLL of the window's tokens after <bos> alone


@torch.no_grad()
def make_contexts(
    model: HookedTransformer, layer: int, documents: list[list[int]], window: int,
    batch_size: int = 16,
) -> Contexts:  # fmt: skip
    """Non-overlapping windows of `window` tokens from each document (`<bos>` left out)."""
    if window < 2:
        raise ValueError(f"s4_window must be >= 2, got {window}")
    bos = maybe_token_id(tokenizer_of(model), "bos")
    head = [] if bos is None else [bos]
    cut = [d[len(head) :] for d in documents]
    windows = [c[i : i + window] for c in cut for i in range(0, len(c) - window + 1, window)]
    if not windows:
        raise ValueError(f"no held-out document holds {window} tokens: lower s4_window")
    rows = [head + w for w in windows]
    acts = []
    for start in range(0, len(rows), batch_size):
        acts.append(
            _layer_rows(model, layer, rows[start : start + batch_size])[:, len(head) :].amax(1)
        )
    surprisal = token_surprisal(model, rows, [len(head)] * len(rows), batch_size)
    return Contexts(torch.tensor(windows), torch.cat(acts), surprisal)

"""Where in a corpus each feature of a circuit fires hardest, with its activation on every token
around: the examples of a feature panel (circuit-tracer's feature files, our viewer).

One pass over the corpus reads every point at once (the model runs to the last point only) and
keeps each wanted feature's top-k (document, position) activations; a second pass over the
documents chosen reads the window of tokens around each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from circuitforge.data.padding import right_padded
from circuitforge.feature_circuits.attribution import flat
from circuitforge.feature_circuits.points import SAEPoint
from circuitforge.model.tokenizer import decode, encode, maybe_token_id, token_id, tokenizer_of


@dataclass(frozen=True)
class ContextCorpus:
    """The corpus a run's feature examples come from: the first `documents` of `path` (a
    .txt / .jsonl / .jsonl.gz file, `circuitforge.data.texts.load_texts`), cut to `chars`;
    `k` examples per feature, each `before` tokens up to its most active one and `after` on."""

    path: str
    documents: int = 200
    chars: int = 400
    k: int = 5
    before: int = 12
    after: int = 4


@dataclass(frozen=True)
class FeatureExample:
    tokens: list[str]
    activations: list[float]  # the feature's activation on each token
    document: int
    position: int  # of the most active token in the document (0 is <bos>)


def _activations(
    model: HookedTransformer,
    tokens: Tensor,
    points: list[SAEPoint],
    wanted: dict[int, list[int]],
) -> dict[int, Tensor]:
    """Per point index, the wanted features' activations [batch pos n]."""
    names = {points[i].hook_name for i in wanted}
    stop = max(points[i].layer for i in wanted) + 1
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names, stop_at_layer=stop)
    out = {}
    for i, features in wanted.items():
        x = flat(cache[points[i].hook_name]).float().to(points[i].decoder.device)
        out[i] = points[i].encode(x).float()[..., features].cpu()
    return out


@torch.no_grad()
def feature_examples(
    model: HookedTransformer,
    points: list[SAEPoint],
    wanted: dict[int, list[int]],
    documents: Sequence[str],
    corpus: ContextCorpus,
    batch_size: int = 16,
) -> dict[tuple[int, int], list[FeatureExample]]:
    """(point index, feature) -> its top `corpus.k` examples with a positive activation,
    strongest first (fewer when it fires on fewer tokens; none when it never fires)."""
    wanted = {i: sorted(set(f)) for i, f in wanted.items() if f}
    if not wanted:
        return {}
    if model.tokenizer is None:
        raise ValueError("feature examples need a model with a tokenizer")
    tokenizer = model.tokenizer
    pad, bos = token_id(tokenizer, "pad"), maybe_token_id(tokenizer, "bos")
    rows = encode(tokenizer, documents)
    width = max(len(r) for r in rows)
    best: dict[int, tuple[Tensor, Tensor]] = {}  # point -> (values [k n], flat ids [k n])
    for start in tqdm(range(0, len(rows), batch_size), desc="feature examples", leave=False):
        tokens = right_padded(rows[start : start + batch_size], pad)
        ignore = tokens == pad if bos is None else (tokens == pad) | (tokens == bos)
        ignore = ignore[..., None]
        ids = torch.arange(start, start + len(tokens))[:, None] * width + torch.arange(
            tokens.shape[1]
        )
        for i, acts in _activations(model, tokens, points, wanted).items():
            values = acts.masked_fill(ignore, -torch.inf).flatten(0, 1)
            index = ids.flatten()[:, None].expand_as(values)
            if i in best:
                values, index = torch.cat([best[i][0], values]), torch.cat([best[i][1], index])
            top = values.topk(min(corpus.k, len(values)), dim=0)
            best[i] = (top.values, index.gather(0, top.indices))
    chosen = {  # (point, feature) -> [(document, position)] with a positive activation
        (i, f): [
            divmod(int(flat_id), width)
            for value, flat_id in zip(best[i][0][:, n].tolist(), best[i][1][:, n].tolist())
            if value > 0
        ]
        for i, features in wanted.items()
        for n, f in enumerate(features)
    }
    return _windows(model, points, wanted, rows, chosen, corpus)


def _windows(
    model: HookedTransformer,
    points: list[SAEPoint],
    wanted: dict[int, list[int]],
    rows: list[list[int]],
    chosen: dict[tuple[int, int], list[tuple[int, int]]],
    corpus: ContextCorpus,
) -> dict[tuple[int, int], list[FeatureExample]]:
    """Each chosen (document, position)'s window of tokens and the feature's activations."""
    documents = sorted({d for places in chosen.values() for d, _ in places})
    column = {(i, f): n for i, features in wanted.items() for n, f in enumerate(features)}
    tokenizer = tokenizer_of(model)
    acts_of: dict[int, dict[int, Tensor]] = {}
    for start in range(0, len(documents), 16):
        batch = documents[start : start + 16]
        tokens = right_padded([rows[d] for d in batch], token_id(tokenizer, "pad"))
        for i, acts in _activations(model, tokens, points, wanted).items():
            for row, d in enumerate(batch):
                acts_of.setdefault(d, {})[i] = acts[row]
    out = {}
    for (i, f), places in chosen.items():
        examples = []
        for d, position in places:
            first = 1 if rows[d][0] == maybe_token_id(tokenizer, "bos") else 0  # <bos> not shown
            lo = max(first, position - corpus.before)
            hi = min(len(rows[d]), position + corpus.after + 1)
            values = acts_of[d][i][lo:hi, column[(i, f)]]
            examples.append(
                FeatureExample(
                    [decode(tokenizer, [t]) for t in rows[d][lo:hi]], values.tolist(), d, position
                )
            )
        out[(i, f)] = examples
    return out

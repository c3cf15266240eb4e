"""What every explanation method shares: its signature, input checks, and the text E built from
token ids so that it re-encodes to at most `max_tokens` tokens."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from jaxtyping import Bool
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerBase

from circuitforge.model.internals import mlp_width
from circuitforge.model.tokenizer import decode, encode, tokenizer_of


class ExplainMethod(Protocol):
    def __call__(
        self,
        model: HookedTransformer,
        layer: int,
        neurons: list[int],
        *,
        max_tokens: int = 24,
        **options: Any,
    ) -> list[str]: ...


def check_request(
    model: HookedTransformer, layer: int, neurons: list[int], max_tokens: int
) -> None:
    """One ValueError line for a layer or neuron out of range or `max_tokens` < 1."""
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(
            f"layer {layer} is out of range: the model has {model.cfg.n_layers} layers"
        )
    width = mlp_width(model)
    bad = [n for n in neurons if not 0 <= n < width]
    if bad:
        raise ValueError(
            f"neuron {bad[0]} is out of range: layer {layer}'s MLP has {width} neurons"
        )
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")


def word_list(model: HookedTransformer, ids: Sequence[int], max_tokens: int) -> str:
    """The tokens `ids` (best first) as one text of space-separated words: each token decoded and
    stripped, empty and repeated words (case-insensitive) dropped, and words added while the
    text re-encodes to at most `max_tokens` tokens."""
    tokenizer = tokenizer_of(model)
    words: list[str] = []
    seen: set[str] = set()
    for i in ids:
        word = decode(tokenizer, [int(i)]).strip()
        if not word or word.lower() in seen:
            continue
        trial = " ".join([*words, word])
        if len(encode(tokenizer, [trial], add_special_tokens=False)[0]) > max_tokens:
            continue  # a longer word may not fit where a shorter one still does
        words.append(word)
        seen.add(word.lower())
        if len(encode(tokenizer, [trial], add_special_tokens=False)[0]) == max_tokens:
            break
    return " ".join(words)


def allowed_tokens(model: HookedTransformer, ascii_only: bool = True) -> Bool[Tensor, " d_vocab"]:
    """The tokens a text E may hold: not special; with `ascii_only`, also printable ASCII, not
    blank and not `<...>`-shaped (Gemma's 262k vocabulary is mostly other scripts, byte pieces
    and unused slots, which a text read by S1 or a reader cannot use; the output-centric paper
    left such noise to its explainer LLM). Decoding the vocabulary is remembered per tokenizer."""
    tokenizer = tokenizer_of(model)
    allowed = torch.ones(model.cfg.d_vocab, dtype=torch.bool)
    special = [i for i in tokenizer.all_special_ids if i < model.cfg.d_vocab]
    allowed[special] = False
    if ascii_only:
        allowed &= _ascii_words(tokenizer, model.cfg.d_vocab)
    if not allowed.any():
        raise ValueError(f"no token of model {model.cfg.model_name!r} may stand in a text E")
    return allowed


@functools.lru_cache(maxsize=4)
def _ascii_words(tokenizer: PreTrainedTokenizerBase, d_vocab: int) -> Bool[Tensor, " d_vocab"]:
    texts = tokenizer.batch_decode([[i] for i in range(d_vocab)])
    keep = [
        t.isascii() and t.isprintable() and bool(t.strip()) and not (t[:1] == "<" and t[-1:] == ">")
        for t in texts
    ]
    return torch.tensor(keep)

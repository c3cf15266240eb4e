"""What every explanation method shares: its signature, input checks, and the text E built from
token ids so that it re-encodes to at most `max_tokens` tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from transformer_lens import HookedTransformer

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

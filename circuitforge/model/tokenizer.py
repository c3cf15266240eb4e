"""Typed access to a model's tokenizer: the tokenizer itself, its special ids, encode, decode.

Hugging Face types `tokenizer.pad_token_id` as any of int, str, lists or None, and
`HookedTransformer.tokenizer` may be None (a model built from a config alone); these say which
one the caller has, or raise naming what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerBase

Special = Literal["pad", "bos", "eos"]


def tokenizer_of(model: HookedTransformer) -> PreTrainedTokenizerBase:
    """The model's tokenizer, or a ValueError (a model built from a config alone has none)."""
    if model.tokenizer is None:
        raise ValueError(f"model {model.cfg.model_name!r} has no tokenizer: this needs text")
    return model.tokenizer


def maybe_token_id(tokenizer: PreTrainedTokenizerBase, which: Special) -> int | None:
    """The tokenizer's `which` token id, None when it has none."""
    value = getattr(tokenizer, f"{which}_token_id")
    if value is not None and not isinstance(value, int):
        raise TypeError(f"the tokenizer's {which}_token_id is {value!r}, not one id")
    return value


def token_id(tokenizer: PreTrainedTokenizerBase, which: Special) -> int:
    """The tokenizer's `which` token id, or a ValueError when it has none."""
    value = maybe_token_id(tokenizer, which)
    if value is None:
        raise ValueError(f"the tokenizer has no {which} token")
    return value


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], add_special_tokens: bool = True
) -> list[list[int]]:
    """Each text's token ids."""
    ids = tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]
    return [list(map(int, row)) for row in ids]


def decode(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> str:
    """The text of `ids` (one string: `decode` of a flat id list)."""
    text = tokenizer.decode(list(ids))
    assert isinstance(text, str)
    return text


def str_tokens(model: HookedTransformer, ids: Int[Tensor, " pos"]) -> list[str]:
    """Each token of one sequence as text (`to_str_tokens` of a 1-D tensor)."""
    pieces = model.to_str_tokens(ids)
    if ids.dim() != 1 or not all(isinstance(p, str) for p in pieces):
        raise ValueError(f"str_tokens reads one sequence of ids, got shape {tuple(ids.shape)}")
    return [str(p) for p in pieces]


def to_text(model: HookedTransformer, ids: Int[Tensor, " pos"]) -> str:
    """One sequence of ids as text (`to_string` of a 1-D tensor)."""
    text = model.to_string(ids)
    if not isinstance(text, str):
        raise ValueError(f"to_text reads one sequence of ids, got shape {tuple(ids.shape)}")
    return text

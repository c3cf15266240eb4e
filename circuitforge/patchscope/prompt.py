"""Prompts with one placeholder token, where a vector is injected."""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer


class PromptError(ValueError):
    """A prompt or placeholder that cannot carry an injected vector."""


@dataclass(frozen=True)
class PlaceholderPrompt:
    text: str
    placeholder: str
    tokens: Int[Tensor, "1 pos"]
    position: int  # index of the placeholder token in `tokens`


def placeholder_token_ids(model: HookedTransformer, placeholder: str) -> set[int]:
    """Token ids the placeholder may take in a prompt (with and without a leading space)."""
    ids: set[int] = set()
    for form in (placeholder, " " + placeholder.lstrip()):
        encoded = model.to_tokens(form, prepend_bos=False)[0].tolist()
        if len(encoded) == 1:
            ids.add(encoded[0])
    if not ids:
        pieces = model.to_str_tokens(placeholder, prepend_bos=False)
        raise PromptError(
            f"placeholder {placeholder!r} is more than one token ({pieces}); "
            "choose a placeholder the tokenizer keeps whole, such as 'x'"
        )
    return ids


def locate_placeholder(
    model: HookedTransformer, text: str, placeholder: str = "x", prepend_bos: bool = True
) -> PlaceholderPrompt:
    """Tokenize `text` and find its single placeholder token."""
    if model.tokenizer is None:
        raise PromptError("the model has no tokenizer; a text prompt cannot be tokenized")
    ids = placeholder_token_ids(model, placeholder)
    tokens = model.to_tokens(text, prepend_bos=prepend_bos).cpu()
    positions = [i for i, t in enumerate(tokens[0].tolist()) if t in ids]
    if len(positions) != 1:
        pieces = model.to_str_tokens(tokens[0])
        where = "does not contain" if not positions else f"contains {len(positions)} times"
        raise PromptError(
            f"prompt {text!r} {where} the placeholder token {placeholder!r} "
            f"(it needs exactly one); its tokens are {pieces}"
        )
    return PlaceholderPrompt(
        text=text, placeholder=placeholder, tokens=tokens, position=positions[0]
    )

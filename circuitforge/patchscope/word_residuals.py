"""The residual stream of real words at the placeholder: a baseline that is a word.

A Patchscope reads a word's own residual back as a description of the word. The vector X
starts from, and is decoded against, a baseline; the mean residual of corpus texts (the seed
study's) is no word at all, and on Gemma-3-270M X optimised from it decodes to the prompt's
default. The mean over many words, each put in the prompt's placeholder slot, is an "average
word" at that slot: X moved from there towards a neuron stays among the vectors the Patchscope
reads, and the contrast with it removes what every word has in common.
"""

from __future__ import annotations

import re

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.model.forward import embed, run_blocks
from circuitforge.model.tokenizer import decode
from circuitforge.patchscope.prompt import PlaceholderPrompt

_WORD = re.compile(r"[a-z]{3,15}")


def vocabulary_words(model: HookedTransformer, n: int, chunk: int = 4096) -> Int[Tensor, " n"]:
    """The first `n` token ids (in vocabulary order) that are one lower-case word of 3-15
    letters and what the tokenizer makes of that word after a space, as a prompt's placeholder
    is (`" x"`): the tokenizer's most common whole words, roughly."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("the model has no tokenizer: there are no words to average")
    ids: list[int] = []
    for start in range(0, len(tokenizer), chunk):
        candidates = range(start, min(start + chunk, len(tokenizer)))
        words = {i: decode(tokenizer, [i]).strip() for i in candidates}
        words = {i: w for i, w in words.items() if _WORD.fullmatch(w)}
        encoded = tokenizer([" " + w for w in words.values()], add_special_tokens=False)
        for token_id, pieces in zip(words, encoded["input_ids"]):
            if pieces == [token_id]:
                ids.append(token_id)
        if len(ids) >= n:
            return torch.tensor(ids[:n])
    raise ValueError(f"the vocabulary has only {len(ids)} whole-word tokens, not {n}")


@torch.no_grad()
def word_residuals(
    model: HookedTransformer,
    prompt: PlaceholderPrompt,
    layer: int,
    words: Int[Tensor, " n"],
    batch_size: int = 256,
) -> Float[Tensor, "n d_model"]:
    """`blocks.{layer}.hook_resid_pre` at the placeholder, with each word in its place."""
    out = []
    for start in range(0, len(words), batch_size):
        chunk = words[start : start + batch_size]
        tokens = prompt.tokens.repeat(len(chunk), 1)
        tokens[:, prompt.position] = chunk
        residual, mask = embed(model, tokens.to(model.cfg.device))
        residual = run_blocks(model, residual, 0, layer, mask)
        out.append(residual[:, prompt.position].float().cpu())
    return torch.cat(out)

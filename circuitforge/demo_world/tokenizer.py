"""A word-level tokenizer learned from the demo corpus with the `tokenizers` library.

Words and punctuation marks are tokens; years split into two-digit tokens ("1732" -> "17", "32")
as GPT-2 splits them, so the greater-than task asks for one two-digit token. `<pad>`, `<bos>`,
`<eos>`, `<unk>` are special tokens, `<bos>` is prepended to every encoding, and the Patchscope
placeholder `x` is an ordinary single token (the corpus uses it: "each x in a set").
Decoding joins words with spaces and removes the space before punctuation.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
PAD, BOS, EOS, UNK = SPECIAL_TOKENS
TWO_DIGITS = [f"{i:02d}" for i in range(100)]  # every two-digit token exists, seen or not


def train_word_tokenizer(texts: Iterable[str], extra_words: Iterable[str] = ()) -> Tokenizer:
    """A word-level tokenizer whose vocabulary is every word of `texts` (and `extra_words`)."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"\d\d"), behavior="isolated"), pre_tokenizers.Whitespace()]
    )
    trainer = trainers.WordLevelTrainer(
        vocab_size=1_000_000, min_frequency=1, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator([*texts, " ".join(TWO_DIGITS), " ".join(extra_words)], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS} $B",
        special_tokens=[(BOS, tokenizer.token_to_id(BOS))],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return _sorted_vocabulary(tokenizer)


def _sorted_vocabulary(tokenizer: Tokenizer) -> Tokenizer:
    """The same tokenizer with ids ordered: specials first, then words alphabetically.

    The trainer orders words by frequency, and ties by an order that is not guaranteed to be
    the same across runs; a sorted vocabulary makes the tokenizer a function of the corpus only.
    """
    words = sorted(w for w in tokenizer.get_vocab() if w not in SPECIAL_TOKENS)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + words)}
    sorted_tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    for special in SPECIAL_TOKENS:
        sorted_tokenizer.add_special_tokens([special])
    sorted_tokenizer.pre_tokenizer = tokenizer.pre_tokenizer
    sorted_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
    )
    sorted_tokenizer.decoder = tokenizer.decoder
    return sorted_tokenizer

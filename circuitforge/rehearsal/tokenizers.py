"""Stand-in tokenizers at the real vocabulary sizes and special tokens, built from Gemma 3's.

Gemma 2 (256,000 ids): Gemma 3's tokenizer cut at id 256,000 (the same SentencePiece-style BPE
with byte fallback; `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3, `<mask>` 4 as in Gemma 2).
GPT-2 (50,257 ids): a byte-level BPE whose merges are Gemma 3's first ones rewritten as bytes,
`<|endoftext|>` at 50,256 as bos, eos and unk. Both tokenise English into word pieces that
names and common words fit in one token of, which is all the runs need of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GEMMA2_VOCAB = 256_000
GPT2_VOCAB = 50_257


def gemma2_tokenizer_json(gemma3: dict[str, Any]) -> dict[str, Any]:
    """Gemma 3's tokenizer.json cut to Gemma 2's 256,000 ids (merges into removed ids dropped)."""
    out = json.loads(json.dumps(gemma3))
    vocab = {t: i for t, i in gemma3["model"]["vocab"].items() if i < GEMMA2_VOCAB}
    out["model"]["vocab"] = vocab
    out["model"]["merges"] = [
        m
        for m in gemma3["model"]["merges"]
        if m[0] + m[1] in vocab and m[0] in vocab and m[1] in vocab
    ]
    out["added_tokens"] = [t for t in gemma3["added_tokens"] if t["id"] < GEMMA2_VOCAB]
    return out


GEMMA2_TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "clean_up_tokenization_spaces": False,
    "model_max_length": 1000000000000000019884624838656,
    "spaces_between_special_tokens": False,
    "tokenizer_class": "GemmaTokenizer",
}
GEMMA2_SPECIAL_TOKENS = {
    "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _as_bytes(piece: str) -> bytes | None:
    if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
        return bytes([int(piece[3:5], 16)])
    if piece.startswith("<") and piece.endswith(">"):
        return None  # a special or unused token
    return piece.replace("▁", " ").encode("utf-8")


def gpt2_tokenizer_json(gemma3: dict[str, Any], words: Sequence[str] = ()) -> dict[str, Any]:
    """A byte-level BPE of GPT-2's size: 256 byte tokens, `words` (" word", one token each, as
    GPT-2 has the IOI names), then Gemma 3's tokens by rank."""
    chars = _bytes_to_unicode()

    def byte_level(piece: str) -> str | None:
        raw = _as_bytes(piece)
        return None if raw is None else "".join(chars[b] for b in raw)

    vocab = {chars[b]: i for i, b in enumerate(sorted(chars, key=lambda b: ord(chars[b])))}
    made_by: dict[str, tuple[str, str]] = {}
    rank: dict[tuple[str, str], int] = {}
    for n, (left, right) in enumerate(gemma3["model"]["merges"]):
        a, b = byte_level(left), byte_level(right)
        # GPT-2 splits words before the BPE: a space only ever starts a piece
        if a is None or b is None or "Ġ" in (a + b)[1:] or "Ċ" in a + b:
            continue
        made_by.setdefault(a + b, (a, b))
        rank.setdefault((a, b), n)
    merges: list[list[str]] = []

    def add(token: str) -> None:  # its parts first, so that every token is reachable
        if token in vocab or len(vocab) >= GPT2_VOCAB - 1:
            return
        a, b = made_by.get(token, (token[:-1], token[-1]))  # a character Gemma keeps whole
        add(a)
        add(b)
        if len(vocab) < GPT2_VOCAB - 1 and a in vocab and b in vocab:
            merges.append([a, b])
            vocab[token] = len(vocab)

    for word in words:
        add(byte_level("▁" + word) or "")
    by_rank = sorted(gemma3["model"]["vocab"].items(), key=lambda kv: kv[1])
    for piece, _ in by_rank:  # Gemma's ids follow its tokens' scores: common pieces first
        token = byte_level(piece)
        if token is not None and len(token) > 1:
            add(token)
    # every Gemma merge within the vocabulary (Gemma makes a token by several pairs), in
    # Gemma's order; the byte chains of characters Gemma keeps whole last
    merges += [[a, b] for (a, b) in rank if a in vocab and b in vocab and a + b in vocab]
    merges = [list(m) for m in dict.fromkeys(map(tuple, merges))]
    merges.sort(key=lambda m: rank.get((m[0], m[1]), len(rank)))
    if len(vocab) != GPT2_VOCAB - 1:
        raise ValueError(f"only {len(vocab)} GPT-2 tokens from Gemma 3's merges")
    eot = "<|endoftext|>"
    vocab[eot] = GPT2_VOCAB - 1
    byte_level_cfg = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": GPT2_VOCAB - 1,
                "content": eot,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": True,
                "special": True,
            }
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level_cfg},
        "post_processor": {"type": "ByteLevel", **byte_level_cfg, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", **byte_level_cfg},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


GPT2_TOKENIZER_CONFIG = {"model_max_length": 1024}


def gpt2_vocab_and_merges(tokenizer: dict[str, Any]) -> tuple[str, str]:
    """`vocab.json` and `merges.txt` of the byte-level tokenizer (the real repo ships both)."""
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in tokenizer["model"]["merges"])
    return json.dumps(tokenizer["model"]["vocab"], ensure_ascii=False), merges


def read_gemma3_tokenizer(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if len(data["model"]["vocab"]) < GEMMA2_VOCAB:
        raise ValueError(f"{path}: {len(data['model']['vocab'])} ids, fewer than Gemma 2's")
    return data

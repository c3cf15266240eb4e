"""Neutral carrier sentences holding E in a slot, tokenised so that E's tokens are known.

A carrier is a sentence with one `{E}` slot. It is tokenised in three pieces (before, E, after)
so E's token span is exact; the carrier's own tokens are left out of every score. A space before
the slot goes with E (` word`, as words appear in running text).
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitforge.model.tokenizer import encode

SLOT = "{E}"
DEFAULT_CARRIERS = (
    "I read this today: {E}",
    "Someone wrote {E} on the board, and then left.",
    "The next line says {E} and nothing else.",
)


def check_carriers(carriers: list[str] | tuple[str, ...]) -> None:
    """One ValueError line for no carrier, or a carrier without exactly one `{E}` slot."""
    if not carriers:
        raise ValueError("carriers: give at least one carrier sentence with a {E} slot")
    for c in carriers:
        if c.count(SLOT) != 1:
            raise ValueError(f"carrier {c!r} must hold the slot {SLOT} exactly once")


@dataclass(frozen=True)
class CarriedText:
    ids: list[int]  # <bos> (when the tokenizer has one) + before + E + after
    start: int  # E's tokens are ids[start:stop]
    stop: int


def carry(tokenizer, carrier: str, text: str, bos: int | None) -> CarriedText:
    before, after = carrier.split(SLOT)
    space = " " if before.endswith(" ") else ""
    before = before.rstrip(" ")
    words = text.strip()
    pieces = encode(tokenizer, [before, space + words if words else "", after], False)
    head = ([bos] if bos is not None else []) + pieces[0]
    return CarriedText(head + pieces[1] + pieces[2], len(head), len(head) + len(pieces[1]))


def check_carrier_tokens(tokenizer, carriers: list[str]) -> None:
    """One ValueError line for a carrier holding a word the tokenizer does not know (`<unk>`)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return
    for c in carriers:
        if unk in encode(tokenizer, [c.replace(SLOT, "")], False)[0]:
            raise ValueError(f"carrier {c!r} holds words the model's tokenizer does not know")

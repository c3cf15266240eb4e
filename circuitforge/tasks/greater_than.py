"""Greater-than pairs (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17".

The answer is a later two-digit year (YY + 1), the wrong answer an earlier one (YY - 1); the
corrupted prompt starts at YY = 01, so nothing in it says which years are later.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from circuitforge.tasks.prompt_pairs import PromptPair

NOUNS = "war expedition drought famine reign strike project siege journey campaign".split()
TEMPLATE = "The {noun} lasted from the year {century}{start:02d} to the year {century}"


def greater_than_pairs(
    n: int, seed: int = 0, nouns: Sequence[str] = NOUNS, centuries: tuple[int, ...] = (16, 17, 18)
) -> list[PromptPair]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        noun, century, start = rng.choice(nouns), rng.choice(centuries), rng.randint(2, 97)
        clean = TEMPLATE.format(noun=noun, century=century, start=start)
        corrupt = TEMPLATE.format(noun=noun, century=century, start=1)
        pairs.append(PromptPair(clean, corrupt, f"{start + 1:02d}", f"{start - 1:02d}"))
    return pairs

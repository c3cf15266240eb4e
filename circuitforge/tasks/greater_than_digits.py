"""Greater-than for tokenizers that split numbers into digits (Gemma): the decade digit.

"The war lasted from the year 1732 to the year 17" is followed, in Gemma's tokens, by one digit:
the decade. The answer is the next decade (YY // 10 + 1: "4"), the wrong answer the previous
one (YY // 10 - 1: "2"); so YY runs from 10 to 89. The corrupted prompt starts at YY = 01, as in
`circuitforge.tasks.greater_than` (same template and nouns), so nothing in it says which decades
are later.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from circuitforge.tasks.greater_than import NOUNS, TEMPLATE
from circuitforge.tasks.prompt_pairs import PromptPair


def decade_pairs(
    n: int, seed: int = 0, nouns: Sequence[str] = NOUNS, centuries: tuple[int, ...] = (16, 17, 18)
) -> list[PromptPair]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        noun, century, start = rng.choice(nouns), rng.choice(centuries), rng.randint(10, 89)
        clean = TEMPLATE.format(noun=noun, century=century, start=start)
        corrupt = TEMPLATE.format(noun=noun, century=century, start=1)
        pairs.append(PromptPair(clean, corrupt, str(start // 10 + 1), str(start // 10 - 1)))
    return pairs

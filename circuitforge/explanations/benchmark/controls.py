"""The control texts, beside the methods' own:
control_random_neuron  the base method's E of another neuron of the chunk (its first partner)
control_mean_vector    the Patchscope decoding of the baseline itself (one text for every neuron)
control_shuffled       the base method's E with its tokens shuffled (seeded by the neuron)
"""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from circuitforge.model.tokenizer import decode, encode, tokenizer_of

CONTROLS = ("control_random_neuron", "control_mean_vector", "control_shuffled")


def partners(neurons: list[int], seed: int) -> dict[int, tuple[int, int]]:
    """Two other neurons of the chunk for each (the S1/S3 controls, the 1-of-3 distractors): the
    chunk in a seeded order, each neuron's next and next-but-one. Needs >= 3 neurons."""
    if len(set(neurons)) < 3:
        raise ValueError(
            f"a chunk of {len(set(neurons))} neurons: the controls and the 1-of-3 test need >= 3 "
            "per chunk (data.batch_size, and a neuron count that leaves no chunk under 3)"
        )
    order = torch.randperm(len(neurons), generator=torch.Generator().manual_seed(seed)).tolist()
    ring = [neurons[i] for i in order]
    k = len(ring)
    return {ring[j]: (ring[(j + 1) % k], ring[(j + 2) % k]) for j in range(k)}


def shuffled(model: HookedTransformer, text: str, seed: int) -> str:
    tokenizer = tokenizer_of(model)
    (ids,) = encode(tokenizer, [text], add_special_tokens=False)
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist()
    return decode(tokenizer, [ids[i] for i in order])


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk `chunk`'s partners (the texts and the scores draw the same)."""
    return seed * 1_000_003 + chunk

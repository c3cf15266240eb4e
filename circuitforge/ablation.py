"""What a removed edge or node carries instead of its clean value: the one `Ablation` vocabulary
of the edge circuits (`edges/`) and the feature circuits (`feature_circuits/`).

    interchange  its value on the corrupted prompt of the pair
    zero         zero
    mean         its mean over the batch
"""

from __future__ import annotations

from typing import Literal

Ablation = Literal["interchange", "zero", "mean"]
ABLATIONS: tuple[Ablation, ...] = ("interchange", "zero", "mean")


def check_ablation(kind: str) -> Ablation:
    """`kind` if it is an ablation; a ValueError naming the choices otherwise."""
    if kind not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {kind!r}")
    return kind  # type: ignore[return-value]

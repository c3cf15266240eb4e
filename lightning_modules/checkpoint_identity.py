"""What a checkpoint says it belongs to, and the check that refuses to resume another run."""

from __future__ import annotations

from typing import Any


def check_checkpoint_identity(checkpoint: dict, mine: dict[str, Any]) -> None:
    saved = checkpoint.get("circuitforge")
    if saved is None:
        raise ValueError("this checkpoint was not written by a circuitforge run")
    diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
    if diff:
        lines = "; ".join(f"{k}: checkpoint {a!r}, this run {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"checkpoint is from another model or experiment: {lines}")

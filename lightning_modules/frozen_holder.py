"""Keeps the frozen model out of a LightningModule's registered children."""

from __future__ import annotations

from transformer_lens import HookedTransformer


class Unregistered:
    """Holds the frozen model outside nn.Module registration: not saved, not moved by Lightning."""

    def __init__(self, model: HookedTransformer) -> None:
        self.model = model

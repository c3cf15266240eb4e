"""TextDataModule: gone. Kept only to refuse old configs in one line naming the new settings.

The gradient Patchscope reads no data: its corpus baseline is the model's own setting
(`baseline: {corpus: <path>, n_documents: 100, window: 32}`,
`circuitforge/patchscope/baseline.py`) and its step schedule the model's `steps_per_epoch`.
"""

from __future__ import annotations

from typing import Any

import lightning as L

MOVED = (
    "data: TextDataModule is gone: the corpus baseline is the model's "
    "baseline: {corpus: <source>, n_documents: N, window: W} and the steps its steps_per_epoch; "
    "drop the data: block"
)


class TextDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: str = "",
        n_documents: int = 100,
        window: int = 32,
        prepend_bos: bool = False,
        text_field: str = "text",
        batch_size: int = 8,
        steps_per_epoch: int = 10,
        cache_dir: Any = None,
    ) -> None:
        """The old settings, accepted only to be refused (`MOVED`)."""
        raise ValueError(MOVED)

"""Checkpoints written whole or not at all, and read back as tensors and plain values only.

Lightning's writer stages the file in the system's temporary folder and moves it: across
filesystems that is a copy, and a full disk left a 4096-byte `last.ckpt`. This one writes beside
the target and renames (`circuitforge.atomic_files`); it reads with `read_checkpoint`, whose
errors name the file and never advise loading arbitrary objects.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from circuitforge.atomic_files import torch_save_atomically
from circuitforge.checkpoints import read_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        torch_save_atomically(path, checkpoint)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return read_checkpoint(path)

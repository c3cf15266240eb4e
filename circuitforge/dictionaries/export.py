"""Write a trained dictionary the way `sae_lens.SAE.load_from_disk` reads it, with a manifest.

The training SAE reads scaled activations; the export folds the scale into the weights
(sae-lens's `fold_activation_norm_scaling_factor`), so the saved SAE reads raw activations,
and saves sae-lens's inference model (`save_inference_model`: TopK stays TopK, BatchTopK
becomes JumpReLU with its learnt threshold). The folder is written beside its target and moved
into place, so an interrupted export leaves the previous one whole.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import torch

from circuitforge.manifest import write_manifest


@torch.no_grad()
def inference_copy(sae: Any, scale: float) -> Any:
    """The SAE with the input scale folded in (a copy; the training SAE is unchanged)."""
    folded = copy.deepcopy(sae)
    folded.fold_activation_norm_scaling_factor(scale)
    return folded


def export_dictionary(
    sae: Any, scale: float, folder: Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Save `sae` (input scale folded in) to `folder` with a sha256 manifest."""
    folder = Path(folder)
    folded = inference_copy(sae, scale)
    for key, value in (metadata or {}).items():
        folded.cfg.metadata[key] = value
    staging = folder.with_name(folder.name + ".writing")
    old = folder.with_name(folder.name + ".old")
    for stale in (staging, old):
        shutil.rmtree(stale, ignore_errors=True)
    folded.save_inference_model(staging)
    write_manifest(staging)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder

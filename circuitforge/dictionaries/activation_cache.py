"""Hook activations of a token stream, cached once on disk (bf16, memory-mapped), read by row.

Dictionary pilots train several epochs on the same tokens; streaming the frozen model for each
costs far more than the dictionary steps, so the activations are written once and reused. A cache
is a folder: `tokens.npy` (the rows, int64 [row, pos]), one `{hook}.bin` per hook (raw bf16 of
every position, [row, pos, d], BOS included: the reader applies the token exclusion itself, so the
cache serves any exclusion list), and `meta.json` (what stream it is: corpus, context, seed, the
model's name, the hooks, whether the forward ran under bf16 autocast). It is written beside its
target and moved into place, so a half-written cache is never read.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.dictionaries.activations import hook_activations

META = "meta.json"
TOKENS = "tokens.npy"


def hook_file(hook: str) -> str:
    return f"{hook}.bin"


def write_activation_cache(
    model: HookedTransformer,
    rows: Int[Tensor, "row pos"],
    hooks: list[str],
    folder: Path,
    stream: dict[str, Any],
    bf16: bool = True,
    batch_size: int = 16,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Run the model over `rows` (`batch_size` rows a forward, up to the deepest hook) and write
    each hook's activation at every position as bf16; `stream` (corpus, context, seed, ...) is
    recorded in the metadata for the reader's checks. `progress(rows_done, seconds)` after
    each batch."""
    folder = Path(folder)
    if folder.exists():
        raise ValueError(f"activation cache {folder} exists already: remove it or name another")
    if not hooks:
        raise ValueError("an activation cache needs at least one hook")
    missing = [h for h in hooks if h not in model.hook_dict]
    if missing:
        raise ValueError(f"activation cache: the model has no hooks {missing}")
    stop = max(int(h.split(".")[1]) for h in hooks) + 1
    n_rows, context = rows.shape
    d = model.cfg.d_model
    staging = folder.with_name(folder.name + ".writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    np.save(staging / TOKENS, rows.numpy().astype(np.int64))
    outs = {
        h: np.memmap(staging / hook_file(h), np.uint16, "w+", shape=(n_rows, context, d))
        for h in hooks
    }
    device = next(model.parameters()).device
    everywhere = torch.ones(min(batch_size, n_rows), context, dtype=torch.bool, device=device)
    start = time.perf_counter()
    for first in range(0, n_rows, batch_size):
        batch = rows[first : first + batch_size].to(device)
        acts = hook_activations(model, batch, hooks, stop, everywhere[: batch.shape[0]], bf16)
        for hook, act in acts.items():
            raw = act.reshape(batch.shape[0], context, d).to(torch.bfloat16).view(torch.int16)
            outs[hook][first : first + batch.shape[0]] = raw.cpu().numpy().view(np.uint16)
        if progress is not None:
            progress(first + batch.shape[0], time.perf_counter() - start)
    for out in outs.values():
        out.flush()
    meta = {
        **stream,
        "model_name": str(model.cfg.model_name),
        "hooks": list(hooks),
        "d_model": d,
        "rows": int(n_rows),
        "context": int(context),
        "bf16": bf16,
        "dtype": "bfloat16",
        "seconds": round(time.perf_counter() - start, 1),
    }
    (staging / META).write_text(json.dumps(meta, indent=2) + "\n")
    staging.rename(folder)
    return folder


@dataclass
class ActivationCache:
    folder: Path
    meta: dict[str, Any]
    tokens: Int[Tensor, "row pos"]
    arrays: dict[str, np.memmap]  # hook -> uint16 [row, pos, d] (bf16 bits)

    def rows(self, hook: str, picked: Int[Tensor, " n"]) -> Float[Tensor, "n pos d"]:
        """The cached activation of `picked` rows at `hook`, as float32 (read from disk)."""
        if hook not in self.arrays:
            raise ValueError(
                f"activation cache {self.folder} holds {sorted(self.arrays)}, not hook {hook!r}"
            )
        raw = np.ascontiguousarray(self.arrays[hook][picked.numpy()])
        return torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16).float()


def read_activation_cache(folder: Path) -> ActivationCache:
    """Open a cache written by `write_activation_cache` (memory-mapped, nothing read yet)."""
    folder = Path(folder)
    if not (folder / META).is_file():
        raise ValueError(
            f"activation cache {folder} does not exist (no {META}); write it with "
            "scripts/cache_activations.py"
        )
    meta = json.loads((folder / META).read_text())
    tokens = torch.from_numpy(np.load(folder / TOKENS))
    shape = (meta["rows"], meta["context"], meta["d_model"])
    if tuple(tokens.shape) != shape[:2]:
        raise ValueError(f"activation cache {folder}: {TOKENS} has shape {tuple(tokens.shape)}")
    arrays = {}
    for hook in meta["hooks"]:
        path = folder / hook_file(hook)
        if path.stat().st_size != 2 * shape[0] * shape[1] * shape[2]:
            raise ValueError(f"activation cache {folder}: {path.name} is not {shape} bf16")
        arrays[hook] = np.memmap(path, np.uint16, "r", shape=shape)
    return ActivationCache(folder=folder, meta=meta, tokens=tokens, arrays=arrays)

"""Set a patching sweep beside an edge circuit: do the heads that matter appear in the circuit?"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

import numpy as np


def read_circuit_heads(path: str) -> tuple[Path, set[str]]:
    """The heads (`L.H`) among the nodes of an edge circuit's `circuit.json`; a `*` in the path
    picks the newest match (`runs/edges_demo_ioi/version_*/results/circuit.json`)."""
    matches = sorted(glob.glob(path), key=lambda p: Path(p).stat().st_mtime) if "*" in path else []
    found = Path(matches[-1]) if matches else Path(path)
    if not found.is_file():
        raise FileNotFoundError(
            f"edge circuit {path!r} not found: run an edge circuit first "
            "(python train.py fit --config configs/edges/demo_ioi.yaml) or set circuit: null"
        )
    nodes = json.loads(found.read_text()).get("nodes")
    if nodes is None:
        raise ValueError(f"{found} has no `nodes`: is it an edge circuit's circuit.json?")
    return found, {n for n in nodes if re.fullmatch(r"\d+\.\d+", n)}


def head_effects(denoising: np.ndarray | None, noising: np.ndarray | None) -> np.ndarray:
    """How much each head matters [layer, head]: the larger of what patching it in restores
    (denoising, from 0) and what patching it out removes (noising, from 1)."""
    parts = []
    if denoising is not None:
        parts.append(np.abs(denoising))
    if noising is not None:
        parts.append(np.abs(1.0 - noising))
    if not parts:
        raise ValueError("no head sweep to compare (add z to sweeps)")
    return np.maximum.reduce(parts)


def compare_heads(effects: np.ndarray, circuit_heads: set[str], threshold: float, top: int) -> dict:
    """Which heads the sweep finds (effect >= threshold) and which the circuit holds."""
    names = [f"{L}.{H}" for L in range(effects.shape[0]) for H in range(effects.shape[1])]
    flat = effects.ravel()
    order = np.argsort(-flat, kind="stable")
    ranked = [names[i] for i in order if flat[i] >= threshold]  # largest effect first
    mattering = set(ranked)
    both = mattering & circuit_heads
    return {
        "threshold": threshold,
        "heads_that_matter": ranked,
        "heads_in_circuit": sorted(circuit_heads),
        "in_both": sorted(both),
        "matter_but_not_in_circuit": sorted(mattering - circuit_heads),
        "in_circuit_but_small_effect": sorted(circuit_heads - mattering),
        "recall": len(both) / len(mattering) if mattering else None,
        "precision": len(both) / len(circuit_heads) if circuit_heads else None,
        "top_heads": [
            {"head": names[i], "effect": float(flat[i]), "in_circuit": names[i] in circuit_heads}
            for i in order[:top]
        ],
    }


def position_labels(str_tokens: list[list[str]]) -> tuple[list[str], bool]:
    """Heatmap column labels from the prompts' tokens: the token when every prompt has the same
    one there, else the first prompt's token with a `*`; and whether all prompts are the same
    length (positions then mean the same slot of one template)."""
    width = max(len(t) for t in str_tokens)
    labels = []
    for p in range(width):
        here = {t[p] for t in str_tokens if p < len(t)}
        first = next(t[p] for t in str_tokens if p < len(t))
        shown = first.strip() or repr(first)
        labels.append(f"{p} {shown}" if len(here) == 1 else f"{p} {shown}*")
    return labels, len({len(t) for t in str_tokens}) == 1

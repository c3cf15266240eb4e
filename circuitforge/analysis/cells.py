"""What an activation-patching sweep patches: one `Cell` per square of its heatmap.

A sweep kind names a family of hook points and how each is cut into cells:

    resid_pre  blocks.L.hook_resid_pre   one cell per (layer, position)
    attn_out   blocks.L.hook_attn_out    one cell per (layer, position)
    mlp_out    blocks.L.hook_mlp_out     one cell per (layer, position)
    attn_layer blocks.L.hook_attn_out    one cell per layer, every position
    mlp_layer  blocks.L.hook_mlp_out     one cell per layer, every position
    z          blocks.L.attn.hook_z      one cell per (layer, head), every position
    q, k, v    blocks.L.hook_{q,k,v}_input   one cell per (layer, head), every position

The Q/K/V cells patch one head's query, key or value *input* (TransformerLens' split-QKV
hooks; with grouped-query attention the key/value inputs are ungrouped, one per query head),
the same slots the edge graph gives a head. Patching a head's Q input at every position is
patching its query at every position: the exact sweep writes there (`exact_point`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from transformer_lens import HookedTransformer

from circuitforge.model import hooks

SweepKind = Literal[
    "resid_pre", "attn_out", "mlp_out", "attn_layer", "mlp_layer", "z", "q", "k", "v"
]
SWEEP_KINDS: tuple[SweepKind, ...] = get_args(SweepKind)
PER_POSITION = ("resid_pre", "attn_out", "mlp_out")
PER_LAYER = ("attn_layer", "mlp_layer")
PER_HEAD = ("z", "q", "k", "v")
HOOKS: dict[str, Callable[[int], str]] = {
    "resid_pre": hooks.resid_pre,
    "attn_out": hooks.attn_out,
    "mlp_out": hooks.mlp_out,
    "attn_layer": hooks.attn_out,
    "mlp_layer": hooks.mlp_out,
    "z": hooks.attn_z,
    "q": hooks.q_input,
    "k": hooks.k_input,
    "v": hooks.v_input,
}


@dataclass(frozen=True)
class Cell:
    """One patch: `hook` at `position` (None: every position) of `head` (None: no head axis)."""

    kind: str
    layer: int
    position: int | None = None
    head: int | None = None

    @property
    def hook(self) -> str:
        return HOOKS[self.kind](self.layer)

    @property
    def index(self) -> tuple:
        """The slice of the hook's activation [batch, pos, (head,) ...] this cell replaces."""
        position = slice(None) if self.position is None else self.position
        return (slice(None), position) if self.head is None else (slice(None), position, self.head)


def check_kind(model: HookedTransformer, kind: str) -> None:
    if kind not in SWEEP_KINDS:
        raise ValueError(f"sweep kind must be one of {SWEEP_KINDS}, got {kind!r}")
    if kind in ("mlp_out", "mlp_layer") and model.cfg.attn_only:
        raise ValueError("mlp_out: this model is attention-only (it has no MLPs)")


def sweep_cells(model: HookedTransformer, kind: str, n_positions: int) -> list[Cell]:
    """Every cell of one sweep, layer-major (the heatmap's rows are layers)."""
    check_kind(model, kind)
    cfg = model.cfg
    if kind in PER_POSITION:
        return [Cell(kind, L, p) for L in range(cfg.n_layers) for p in range(n_positions)]
    if kind in PER_LAYER:
        return [Cell(kind, L) for L in range(cfg.n_layers)]
    return [Cell(kind, L, None, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads)]


def grid_shape(model: HookedTransformer, kind: str, n_positions: int) -> tuple[int, int]:
    columns = n_positions if kind in PER_POSITION else 1 if kind in PER_LAYER else model.cfg.n_heads
    return model.cfg.n_layers, columns


def exact_point(cell: Cell) -> tuple[str, tuple]:
    """Where the exact patch writes (hook, slice), read from the source run at the same place.

    A head's Q/K/V input patched at every position is its query/key/value patched at every
    position: `attn.hook_q/k/v` come right after the head's projection of its own input, and
    everything later in the head depends on them alone. So the exact sweep writes there (with
    grouped-query attention ungrouped), and the model never builds n_heads copies of the
    residual stream; attribution patching takes its gradient at the inputs themselves."""
    if cell.kind in ("q", "k", "v"):
        return hooks.attn_qkv(cell.layer, cell.kind), (slice(None), slice(None), cell.head)
    return cell.hook, cell.index


def source_hook(cell: Cell) -> str:
    """Where the value a cell copies in is read in the source run. A head's Q/K/V input is the
    block's residual input repeated per head, so it is read once, at `hook_resid_pre`."""
    if cell.kind in ("q", "k", "v"):
        return hooks.resid_pre(cell.layer)
    return cell.hook


def source_index(cell: Cell) -> tuple:
    if cell.kind in ("q", "k", "v"):
        return (slice(None), slice(None))
    return cell.index

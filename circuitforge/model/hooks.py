"""TransformerLens hook names: one function per hook point, named after its path in the model.

The one place a hook name is spelled out. Each function returns the name of a point inside
block `layer`, read like its path through the model with the `hook_` prefixes dropped:

    resid_pre(L)      blocks.L.hook_resid_pre       the residual stream entering block L
    attn_q(L)         blocks.L.attn.hook_q          (also attn_k, attn_v: per-head Q/K/V)
    attn_z(L)         blocks.L.attn.hook_z          each head's mix of values, before W_O
    attn_pattern(L)   blocks.L.attn.hook_pattern
    attn_result(L)    blocks.L.attn.hook_result     each head's output (needs `use_attn_result`)
    ln1_post_scale(L) blocks.L.ln1_post.hook_scale  the post-attention norm's scale (Gemma-2)
    attn_out(L)       blocks.L.hook_attn_out
    resid_mid(L)      blocks.L.hook_resid_mid
    mlp_in(L)         blocks.L.hook_mlp_in          (needs `use_hook_mlp_in`)
    mlp_pre(L)        blocks.L.mlp.hook_pre         (also mlp_pre_linear: a gated MLP's input)
    mlp_post(L)       blocks.L.mlp.hook_post        the neurons
    mlp_out(L)        blocks.L.hook_mlp_out
    resid_post(L)     blocks.L.hook_resid_post      the same tensor as resid_pre(L + 1)
    qkv_input(L, c)   blocks.L.hook_{q,k,v}_input   one head's Q/K/V input (`use_split_qkv_input`)

Points outside the blocks are constants (`EMBED`, `POS_EMBED`, `FINAL_NORM_SCALE`). `block(L,
path)` is the path of anything else in block L (a parameter of the state dict), and
`parse_hook` reads a block's hook name back into its layer and its path inside the block.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# What TransformerLens's `run_with_hooks(fwd_hooks=...)` and `model.hooks(fwd_hooks=...)` take
# (a list of it: `list[(name, hook)]` would not match their declared element type).
FwdHooks = list[tuple[str | Callable[..., Any], Callable[..., Any]]]

EMBED = "hook_embed"
POS_EMBED = "hook_pos_embed"
FINAL_NORM_SCALE = "ln_final.hook_scale"
QKV = ("q", "k", "v")


def block(layer: int, path: str) -> str:
    """`blocks.{layer}.{path}`: a hook or parameter inside block `layer` (`mlp.hook_post`)."""
    return f"blocks.{layer}.{path}"


def resid_pre(layer: int) -> str:
    return block(layer, "hook_resid_pre")


def resid_mid(layer: int) -> str:
    return block(layer, "hook_resid_mid")


def resid_post(layer: int) -> str:
    return block(layer, "hook_resid_post")


def attn_q(layer: int) -> str:
    return block(layer, "attn.hook_q")


def attn_k(layer: int) -> str:
    return block(layer, "attn.hook_k")


def attn_v(layer: int) -> str:
    return block(layer, "attn.hook_v")


def attn_qkv(layer: int, channel: str) -> str:
    """`attn_q`, `attn_k` or `attn_v` of `layer`, by channel."""
    return block(layer, f"attn.hook_{_channel(channel)}")


def attn_z(layer: int) -> str:
    return block(layer, "attn.hook_z")


def attn_pattern(layer: int) -> str:
    return block(layer, "attn.hook_pattern")


def attn_result(layer: int) -> str:
    return block(layer, "attn.hook_result")


def ln1_post_scale(layer: int) -> str:
    return block(layer, "ln1_post.hook_scale")


def attn_out(layer: int) -> str:
    return block(layer, "hook_attn_out")


def qkv_input(layer: int, channel: str) -> str:
    """One head's Q, K or V input (`channel` q, k or v): `blocks.L.hook_{channel}_input`."""
    return block(layer, f"hook_{_channel(channel)}_input")


def q_input(layer: int) -> str:
    return qkv_input(layer, "q")


def k_input(layer: int) -> str:
    return qkv_input(layer, "k")


def v_input(layer: int) -> str:
    return qkv_input(layer, "v")


def mlp_in(layer: int) -> str:
    return block(layer, "hook_mlp_in")


def mlp_pre(layer: int) -> str:
    return block(layer, "mlp.hook_pre")


def mlp_pre_linear(layer: int) -> str:
    return block(layer, "mlp.hook_pre_linear")


def mlp_post(layer: int) -> str:
    return block(layer, "mlp.hook_post")


def mlp_out(layer: int) -> str:
    return block(layer, "hook_mlp_out")


def _channel(channel: str) -> str:
    if channel not in QKV:
        raise ValueError(f"attention channel must be one of {QKV}, got {channel!r}")
    return channel


@dataclass(frozen=True)
class BlockHook:
    """A hook inside a block: its layer and its path in the block (`hook_resid_pre`,
    `attn.hook_z`, `mlp.hook_post`, ...)."""

    layer: int
    point: str

    @property
    def name(self) -> str:
        return block(self.layer, self.point)


_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.((?:[a-z0-9_]+\.)*hook_[a-z0-9_]+)$")


def parse_hook(name: str) -> BlockHook | None:
    """`blocks.{L}.{point}` -> BlockHook(L, point); None for a hook outside the blocks
    (`hook_embed`, `ln_final.hook_scale`) or a name that is no hook."""
    match = _BLOCK_HOOK.match(name)
    return None if match is None else BlockHook(int(match.group(1)), match.group(2))

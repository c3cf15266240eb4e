"""Forward passes the analyses share: capture activations, and read the answer logits cheaply.

Runs go through `circuitforge.model.forward` (blocks followed to their devices), so a model split
over two GPUs by our strategy runs as it does on one. The answer logits are computed only at the
read position and only for the answer columns of the unembedding: a sweep of many copies of a
batch never builds a [rows, pos, vocab] tensor (256k columns for Gemma-2).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities.activation_functions import apply_softcap

from circuitforge.batches import PairBatch
from circuitforge.edges.objectives import last_read_position
from circuitforge.model.forward import embed, output_device, run_blocks
from circuitforge.model.internals import edge_hook_points, final_norm


def final_residual(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos d_model"]:
    """`blocks.{n-1}.hook_resid_post`; hooks installed on the model fire as in a full run."""
    residual, _ = embed(model, tokens)
    return run_blocks(model, residual, 0, model.cfg.n_layers)


def capture(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], names: list[str]
) -> tuple[dict[str, Tensor], Float[Tensor, "batch pos d_model"]]:
    """The activations at `names` (detached) and the final residual of one run."""
    store: dict[str, Tensor] = {}

    def save(act: Tensor, hook) -> None:
        store[hook.name] = act.detach()

    with model.hooks(fwd_hooks=[(name, save) for name in names]):
        residual = final_residual(model, tokens)
    missing = sorted(set(names) - set(store))
    if missing:
        raise ValueError(f"these hooks never fired: {missing}")
    return store, residual


@contextmanager
def head_input_hooks(model: HookedTransformer, needed: bool):
    """Turn on the per-head Q/K/V input hooks (ungrouped under GQA) while `needed`."""
    with edge_hook_points(model) if needed else nullcontext():
        yield


def read_rows(
    residual: Float[Tensor, "batch pos d_model"], read: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "batch d_model"]:
    rows = torch.arange(residual.shape[0], device=residual.device)
    return residual[rows, last_read_position(read).to(residual.device)]


def token_logits(
    model: HookedTransformer,
    residual: Float[Tensor, "batch d_model"],
    tokens: Int[Tensor, "batch k"],
    softcap: bool = True,
) -> Float[Tensor, "batch k"]:
    """The logits of `tokens` (per row) from final residuals: final norm, unembedding columns,
    and (when `softcap`) the output soft-cap, exactly as the model computes them."""
    residual = residual.to(output_device(model))
    residual = final_norm(model, residual[:, None])[:, 0]
    tokens = tokens.to(residual.device)
    columns = model.W_U[:, tokens]  # [d_model, batch, k]
    logits = torch.einsum("bd,dbk->bk", residual, columns) + model.b_U[tokens]
    if softcap:
        logits = apply_softcap(logits, model.cfg.output_logits_soft_cap)
    return logits


def answer_logit_difference(
    model: HookedTransformer, residual: Float[Tensor, "batch pos d_model"], batch: PairBatch
) -> Float[Tensor, " batch"]:
    """logit(answer) - logit(wrong answer) at each pair's read position."""
    if (batch.answer < 0).any():
        raise ValueError("these analyses need answer tokens (a logit difference); tracr has none")
    pair = torch.stack([batch.answer, batch.wrong_answer], dim=1)
    logits = token_logits(model, read_rows(residual, batch.read), pair)
    return logits[:, 0] - logits[:, 1]

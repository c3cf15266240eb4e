"""Logit lens: read the residual stream after every layer as if it were the last.

Stage 0 is the embedding (`blocks.0.hook_resid_pre`); stage L+1 is `blocks.L.hook_resid_post`.
Each stage goes through the model's own final norm (its scale recomputed on that residual, as
in the original logit lens), the unembedding and any output soft-cap, at each prompt's read
position. The last stage is therefore the model's own prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities.activation_functions import apply_softcap

from circuitforge.analysis.runs import capture, read_rows
from circuitforge.model import hooks
from circuitforge.model.forward import output_device
from circuitforge.model.internals import final_norm


@dataclass
class LogitLens:
    stages: list[str]  # "embed", "after 0", ..., "after n-1"
    log_probs: Float[Tensor, "stage batch vocab"]

    def ranks(self, tokens: Int[Tensor, " batch"]) -> Int[Tensor, "stage batch"]:
        """0 = the top token: how many tokens score strictly higher."""
        chosen = self.log_probs.gather(-1, tokens[None, :, None].expand(len(self.stages), -1, 1))
        return (self.log_probs > chosen).sum(-1)

    def probabilities(self, tokens: Int[Tensor, " batch"]) -> Float[Tensor, "stage batch"]:
        index = tokens[None, :, None].expand(len(self.stages), -1, 1)
        return self.log_probs.gather(-1, index)[..., 0].exp()

    def top_k(self, k: int) -> tuple[Float[Tensor, "stage batch k"], Int[Tensor, "stage batch k"]]:
        values, ids = self.log_probs.topk(k, dim=-1)
        return values.exp(), ids


def stage_logits(
    model: HookedTransformer, residual: Float[Tensor, "batch d_model"]
) -> Float[Tensor, "batch vocab"]:
    residual = residual.to(output_device(model))
    residual = final_norm(model, residual[:, None])[:, 0]
    return apply_softcap(model.unembed(residual[:, None])[:, 0], model.cfg.output_logits_soft_cap)


@torch.no_grad()
def logit_lens(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], read: Tensor
) -> LogitLens:
    n = model.cfg.n_layers
    names = [hooks.resid_pre(0)] + [hooks.resid_post(L) for L in range(n)]
    cache, _ = capture(model, tokens, names)
    stages = ["embed"] + [f"after {L}" for L in range(n)]
    log_probs = torch.stack(
        [
            stage_logits(model, read_rows(cache[name], read)).float().log_softmax(-1)
            for name in names
        ]
    )
    return LogitLens(stages, log_probs.cpu())

"""Centring and scaling, measured once on a first slice of the training stream.

sae-lens starts `b_dec` at zero and subtracts it from the input before encoding; its
`expected_average_only_in` only rescales. Gemma's residual stream has a large mean, and an
uncentred input kills features at initialisation. So `b_dec` starts at the data's mean (as
OpenAI's TopK SAEs and EleutherAI's sparsify do), and the input is scaled by
`sqrt(d) / E||x - mean||`, so the centred input has mean norm sqrt(d). sae-lens folds the
factor into the weights when exporting (`fold_activation_norm_scaling_factor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


@dataclass(frozen=True)
class InputStatistics:
    mean: Float[Tensor, " d"]
    scale: float  # multiplies raw activations
    n_tokens: int


def input_statistics(activations: Float[Tensor, "token d"]) -> InputStatistics:
    """The data mean and the scale that gives the centred data mean norm sqrt(d)."""
    if activations.shape[0] < 2:
        raise ValueError("measuring the input's centre needs at least 2 tokens")
    x = activations.double()
    mean = x.mean(0)
    centred_norm = float((x - mean).norm(dim=-1).mean())
    if not math.isfinite(centred_norm) or centred_norm == 0:
        raise ValueError(f"the activations' centred norm is {centred_norm}: cannot scale them")
    scale = math.sqrt(x.shape[1]) / centred_norm
    return InputStatistics(mean=mean.float(), scale=scale, n_tokens=x.shape[0])


@torch.no_grad()
def centre_decoder_bias(sae: torch.nn.Module, stats: InputStatistics) -> None:
    """`b_dec` <- the data mean in the SAE's (scaled) input space."""
    b_dec = sae.get_parameter("b_dec")
    b_dec.copy_((stats.mean * stats.scale).to(b_dec.dtype))

"""Decompose a residual vector into its strongest SAE features."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from circuitforge.sae.matching import MatchedSAE


@torch.no_grad()
def decompose(matched: MatchedSAE, vector: Float[Tensor, " d_model"], k: int = 10) -> dict:
    """Top-k active features of `vector`, and how much of it they (and all features) rebuild.

    `norm_fraction_topk` = 1 - |x - x_hat_k| / |x|, where x_hat_k decodes only the top-k
    features (plus the decoder bias); `norm_fraction_all` uses every active feature.
    """
    sae = matched.sae
    x = vector.detach().to(device=sae.W_dec.device, dtype=sae.W_dec.dtype)[None]
    acts = sae.encode(x)[0]
    values, indices = acts.topk(min(k, acts.numel()))
    keep = values > 0
    values, indices = values[keep], indices[keep]
    only_top = torch.zeros_like(acts)
    only_top[indices] = values
    x_norm = x.norm().clamp_min(1e-12)

    def fraction(feature_acts: Tensor) -> float:
        x_hat = sae.decode(feature_acts[None])
        return float(1 - (x - x_hat).norm() / x_norm)

    features = []
    for value, index in zip(values.tolist(), indices.tolist()):
        row = {"feature": index, "activation": value}
        url = matched.feature_url(index)
        if url is not None:
            row["url"] = url
        features.append(row)
    return {
        "top_features": features,
        "n_active": int((acts > 0).sum()),
        "norm_fraction_topk": fraction(only_top),
        "norm_fraction_all": fraction(acts),
    }

"""S1 sufficiency and S2 specificity: every neuron of the layer read on E, with nothing injected.

S1 of neuron n on E: n's maximum over E's tokens inside each carrier sentence (carrier tokens
left out), averaged over the carriers, divided by n's 99.9th percentile on held-out documents
(`held_out.neuron_quantiles`). A neuron whose percentile is <= 0 has no unit: NaN.
S2 of E: S1 of every neuron of the layer on E; the true neuron's rank among them
(`ranking.rank_of`: rank, reciprocal rank, top-1, top-10, AUROC against every other neuron).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.data.padding import right_padded
from circuitforge.explanations.benchmark.carriers import carry, check_carriers
from circuitforge.model import hooks
from circuitforge.model.tokenizer import maybe_token_id, tokenizer_of


@torch.no_grad()
def carrier_maxima(
    model: HookedTransformer, layer: int, texts: list[str], carriers: list[str],
    batch_size: int = 32,
) -> Float[Tensor, "text neuron"]:  # fmt: skip
    """Per text, every neuron's max over the text's tokens in each carrier, averaged over the
    carriers; NaN for a text of no tokens."""
    check_carriers(carriers)
    tokenizer = tokenizer_of(model)
    bos = maybe_token_id(tokenizer, "bos")
    carried = [carry(tokenizer, c, t, bos) for t in texts for c in carriers]
    pad = maybe_token_id(tokenizer, "pad") or 0
    out = []
    for start in range(0, len(carried), batch_size):
        part = carried[start : start + batch_size]
        tokens = right_padded([c.ids for c in part], pad).to(model.embed.W_E.device)
        pos = torch.arange(tokens.shape[1])
        inside = torch.stack([(pos >= c.start) & (pos < c.stop) for c in part])
        seen: dict[str, Tensor] = {}

        def keep(act: Tensor, hook, seen: dict = seen) -> None:
            seen["post"] = act.float().cpu()

        model.run_with_hooks(
            tokens, fwd_hooks=[(hooks.mlp_post(layer), keep)], stop_at_layer=layer + 1
        )
        post = seen["post"].masked_fill(~inside[..., None], float("-inf")).amax(1)
        empty = ~inside.any(1)
        out.append(post.masked_fill(empty[:, None], float("nan")))
    rows = torch.cat(out).view(len(texts), len(carriers), -1)
    return rows.mean(1)


def normalised(
    maxima: Float[Tensor, "text neuron"], unit: Float[Tensor, " neuron"]
) -> Float[Tensor, "text neuron"]:
    """maxima / unit per neuron; NaN where the unit is <= 0."""
    safe = torch.where(unit > 0, unit, torch.ones_like(unit))
    return torch.where(unit > 0, maxima / safe, torch.full_like(maxima, float("nan")))

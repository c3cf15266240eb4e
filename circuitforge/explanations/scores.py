"""Scores of a neuron's explanations, computed by the model itself (no external LLM).

- generation score: the neuron's activation when the model reads the decoded text (max over
  its tokens), divided by the neuron's natural maximum in the atlas. Its control is the same
  text read by another, randomly drawn neuron (divided by that neuron's maximum): a text that
  says something about *this* neuron drives it more than it drives a random one.
- agreement: the overlap of X's top SAE features (by increase over the baseline's) with the top
  SAE features of the neuron's atlas contexts (at the hook where X is injected; by increase
  over what random neurons' contexts share), |A & B| / k; its control is the overlap with the
  contexts of the random other neuron.
- seed stability: mean pairwise overlap of the top features, and the fraction of pairs of
  seeds that decode to the same text.
"""

from __future__ import annotations

import itertools

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.model import hooks
from circuitforge.model.tokenizer import encode, maybe_token_id, tokenizer_of


@torch.no_grad()
def text_maxima(
    model: HookedTransformer, texts: list[str], layer: int, batch_size: int = 64
) -> Float[Tensor, "text neuron"]:
    """Max over the tokens of `<bos> text` of every `blocks.{layer}.mlp.hook_post` neuron (BOS
    itself left out; an empty text gives -inf)."""
    tokenizer = tokenizer_of(model)
    rows: list[Tensor] = []
    name = hooks.mlp_post(layer)
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        ids = encode(tokenizer, chunk, add_special_tokens=False)
        bos = maybe_token_id(tokenizer, "bos")
        seqs = [([bos] if bos is not None else []) + i for i in ids]
        width = max(1, max(len(s) for s in seqs))
        pad = maybe_token_id(tokenizer, "pad") or 0
        tokens = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        valid = torch.tensor([[j < len(s) for j in range(width)] for s in seqs])
        if bos is not None:
            valid[:, 0] = False
        seen: dict[str, Tensor] = {}

        def keep(act: Tensor, hook, seen: dict = seen) -> None:
            seen["post"] = act.float().cpu()

        device = model.embed.W_E.device
        model.run_with_hooks(
            tokens.to(device), fwd_hooks=[(name, keep)], stop_at_layer=layer + 1
        )  # right padding under causal attention: real tokens never see the pads
        post = seen["post"].masked_fill(~valid[..., None], float("-inf"))
        rows.append(post.max(dim=1).values)
    return torch.cat(rows)


def relative(activation: float, natural_max: float) -> float | None:
    """activation / natural maximum; None where the neuron never fired (max <= 0) or the text
    had no tokens."""
    if natural_max <= 0 or activation == float("-inf"):
        return None
    return activation / natural_max


def other_neuron(neuron: int, n_neurons: int, seed: int = 0) -> int:
    """A random neuron other than `neuron`, the same every time for the same neuron and seed."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + neuron)
    other = int(torch.randint(n_neurons - 1, (1,), generator=g))
    return other + (other >= neuron)


def top_features(
    activations: Float[Tensor, " feature"], k: int, minus: Float[Tensor, " feature"] | None = None
) -> list[int]:
    """The k features with the largest activation (or increase over `minus`) that are > 0."""
    values = activations if minus is None else activations - minus
    top = values.topk(min(k, values.numel()))
    return [i for v, i in zip(top.values.tolist(), top.indices.tolist()) if v > 0]


def overlap(a: list[int], b: list[int], k: int) -> float:
    """|A & B| / k: 1 when both top-k lists hold the same features."""
    return len(set(a) & set(b)) / k


def seed_stability(features: list[list[int]], texts: list[str], k: int) -> dict:
    """Mean pairwise feature overlap and the fraction of identical decodings over seeds."""
    pairs = list(itertools.combinations(range(len(features)), 2))
    if not pairs:
        return {"feature_overlap": None, "same_text": None}
    return {
        "feature_overlap": sum(overlap(features[i], features[j], k) for i, j in pairs) / len(pairs),
        "same_text": sum(texts[i] == texts[j] for i, j in pairs) / len(pairs),
    }


@torch.no_grad()
def sae_activations(sae, vectors: Float[Tensor, "n d_model"]) -> Float[Tensor, "n feature"]:
    x = vectors.to(device=sae.W_dec.device, dtype=sae.W_dec.dtype)
    return sae.encode(x).float().cpu()

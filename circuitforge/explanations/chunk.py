"""One chunk of neurons explained both ways and scored: what a sweep's step does.

`explain_rows` takes the optimised vectors of a chunk (`optimise.optimise_chunk`), decodes
them with the Patchscope, and builds one row per neuron: its atlas contexts, its decodings,
its top SAE features and the context features, and the scores of `scores.py`.

With `Decoder.scales` other than `(1.0,)` each vector is decoded at the scale the rule of
`circuitforge/patchscope/scales.py` picks (it reads only the neuron at the reading prompt).
The scores are read in fp32 even where the run decodes under bf16 autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.explanations.atlas_view import AtlasView, context_residuals
from circuitforge.explanations.scores import (
    other_neuron,
    overlap,
    relative,
    sae_activations,
    seed_stability,
    text_maxima,
    top_features,
)
from circuitforge.model.internals import mlp_width
from circuitforge.patchscope.generation import patchscope_decode
from circuitforge.patchscope.prompt import PlaceholderPrompt
from circuitforge.patchscope.scales import choose_scales
from circuitforge.sae.matching import MatchedSAE


@dataclass(frozen=True)
class Decoder:
    prompt: PlaceholderPrompt  # the target prompt X is injected into
    alpha: float
    new_tokens: int
    batch_size: int  # vectors decoded at once (3 streams each)
    scales: tuple[float, ...] = (1.0,)  # injection scales the rule picks from
    combined_unembed: bool = False  # contrastive logits in one unembedding (patchscope_decode)


def decode_rows(
    model: HookedTransformer,
    decoder: Decoder,
    source_layer: int,
    target_layer: int,
    x: Float[Tensor, "rows d_model"],
    baseline: Float[Tensor, " d_model"],
    neurons: list[int],
    targets: Float[Tensor, " rows"] | None = None,
) -> tuple[list[str], list[str], list[float]]:
    """The contrastive and plain decodings of each row, and the scale it was decoded at."""
    scales = torch.ones(len(neurons))
    if decoder.scales != (1.0,):
        if targets is None:
            raise ValueError("injection scales need the neurons' targets")
        scales = choose_scales(
            model, decoder.prompt, source_layer, target_layer, x.to(baseline.device), neurons,
            targets, list(decoder.scales),
        )  # fmt: skip
        x = x * scales[:, None].to(x)
    contrastive, plain = [], []
    for start in range(0, len(neurons), decoder.batch_size):
        part = slice(start, start + decoder.batch_size)
        decoded = patchscope_decode(
            model,
            decoder.prompt,
            source_layer,
            x[part].to(baseline.device),
            baseline,
            target_layer,
            neurons[part],
            decoder.alpha,
            decoder.new_tokens,
            decoder.combined_unembed,
        )
        contrastive += decoded.contrastive_text
        plain += decoded.plain_text
    return contrastive, plain, scales.tolist()


def feature_rows(matched: MatchedSAE, features: list[int], values: Tensor) -> list[dict]:
    rows = []
    for f in features:
        row = {"feature": f, "value": float(values[f])}
        url = matched.feature_url(f)
        if url is not None:
            row["url"] = url
        rows.append(row)
    return rows


def explain_rows(
    model: HookedTransformer,
    view: AtlasView,
    matched: MatchedSAE,
    decoder: Decoder,
    source_layer: int,
    target_layer: int,
    x: Float[Tensor, "rows d_model"],
    final_activation: list[float],
    baseline: Float[Tensor, " d_model"],
    neurons: list[int],
    seeds: list[int],
    top_k: int,
    context_top: dict[int, tuple[list[int], Tensor]],
) -> list[dict]:
    """One row per distinct neuron of the chunk (its rows are its seeds, in `seeds` order).

    X's features are ranked by their increase over the baseline's; the contexts' come from
    `context_features` (for these neurons and their random others)."""
    targets = torch.tensor([view.natural_max(n) for n in neurons])
    contrastive, plain, scales = decode_rows(
        model, decoder, source_layer, target_layer, x, baseline, neurons, targets
    )
    with torch.autocast(baseline.device.type, enabled=False):  # scores in fp32
        maxima = text_maxima(model, contrastive + plain, target_layer)  # [2 rows, d_mlp]
    sae = matched.sae
    x_features = sae_activations(sae, x)
    baseline_features = sae_activations(sae, baseline[None])[0]
    distinct = list(dict.fromkeys(neurons))
    others = {n: other_neuron(n, mlp_width(model)) for n in distinct}
    rows = []
    for n in distinct:
        idx = [i for i, m in enumerate(neurons) if m == n]
        first = idx[0]
        other = others[n]
        feats = [top_features(x_features[i], top_k, minus=baseline_features) for i in idx]
        c_feats, c_mean = context_top[n]
        entry = view.neurons[n]
        rows.append(
            {
                "neuron": n,
                "layer": target_layer,
                "natural_max": view.natural_max(n),
                "mean_activation": entry.get("mean_activation"),
                "fraction_active": entry.get("fraction_active"),
                "top_contexts": [
                    {k: c[k] for k in ("context", "trigger_token", "activation")}
                    for c in view.contexts(n)
                ],
                "seeds": [seeds[i] for i in idx],
                "final_activation": [final_activation[i] for i in idx],
                "contrastive_text": [contrastive[i] for i in idx],
                "plain_text": [plain[i] for i in idx],
                **(
                    {"injection_scale": [scales[i] for i in idx]}
                    if decoder.scales != (1.0,)
                    else {}
                ),
                "x_features": [
                    feature_rows(matched, f, x_features[i] - baseline_features)
                    for f, i in zip(feats, idx)
                ],
                "context_features": feature_rows(matched, c_feats, c_mean),
                "generation_score": relative(float(maxima[first, n]), view.natural_max(n)),
                "generation_score_plain": relative(
                    float(maxima[len(neurons) + first, n]), view.natural_max(n)
                ),
                "random_neuron": other,
                "generation_baseline": relative(
                    float(maxima[first, other]), view.natural_max(other)
                ),
                "generation_baseline_plain": relative(
                    float(maxima[len(neurons) + first, other]), view.natural_max(other)
                ),
                "agreement": overlap(feats[0], c_feats, top_k),
                "agreement_baseline": overlap(feats[0], context_top[other][0], top_k),
                **{
                    f"stability_{k}": v
                    for k, v in seed_stability(feats, [contrastive[i] for i in idx], top_k).items()
                },
            }
        )
    return rows


def context_features(
    model: HookedTransformer,
    view: AtlasView,
    matched: MatchedSAE,
    neurons: list[int],
    top_k: int,
    reference: Float[Tensor, " feature"],
    residuals: dict[int, Tensor] | None = None,
) -> dict[int, tuple[list[int], Tensor]]:
    """Per neuron: the top-k SAE features of its atlas contexts by the increase of their mean
    activation over `reference` (`reference_features`: features every context has, the
    stream's common directions, say nothing about one neuron), and those increases."""
    residuals = context_residuals(model, view, neurons, matched.hook_name)
    out = {}
    for n, r in residuals.items():
        mean = sae_activations(matched.sae, r).mean(0) if len(r) else torch.zeros_like(reference)
        out[n] = (top_features(mean, top_k, minus=reference), mean - reference)
    return out


def reference_features(
    model: HookedTransformer,
    view: AtlasView,
    matched: MatchedSAE,
    n_neurons: int = 64,
    seed: int = 0,
) -> Float[Tensor, " feature"]:
    """The mean SAE activation over the top contexts of `n_neurons` neurons drawn at random
    (fixed by `seed`, whatever neurons a sweep explains): what any neuron's contexts share."""
    d_mlp = len(view.neurons)
    g = torch.Generator().manual_seed(seed)
    drawn = torch.randperm(d_mlp, generator=g)[: min(n_neurons, d_mlp)].tolist()
    residuals = context_residuals(model, view, drawn, matched.hook_name)
    rows = torch.cat([r for r in residuals.values() if len(r)])
    return sae_activations(matched.sae, rows).mean(0)

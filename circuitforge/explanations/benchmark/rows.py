"""One chunk of neurons scored: every method's text E through S1-S4 and fluency, one row each
(`scoring.Scoring`: what the scores read off held-out text; `explained.py` reads the rows)."""

from __future__ import annotations

from transformer_lens import HookedTransformer

from circuitforge.explanations.benchmark.controls import chunk_seed, partners
from circuitforge.explanations.benchmark.fluency import text_cross_entropy
from circuitforge.explanations.benchmark.output_effect import (
    content_ids,
    neuron_effects,
    one_of_three,
    text_effect,
)
from circuitforge.explanations.benchmark.prediction import prediction_score
from circuitforge.explanations.benchmark.ranking import rank_of
from circuitforge.explanations.benchmark.scoring import Scoring
from circuitforge.explanations.benchmark.sufficiency import carrier_maxima, normalised


def _number(x: float) -> float | None:
    return None if x != x else float(x)  # NaN -> None


def score_chunk(
    model: HookedTransformer, scoring: Scoring, chunk: int, neurons: list[int],
    texts: dict[str, list[str]],
) -> list[dict]:  # fmt: skip
    pairs = partners(neurons, chunk_seed(scoring.seed, chunk))
    at = {n: i for i, n in enumerate(neurons)}
    methods = list(texts)
    flat = [t for m in methods for t in texts[m]]
    s1_all = normalised(carrier_maxima(model, scoring.layer, flat, scoring.carriers), scoring.unit)
    fluency = text_cross_entropy(model, flat)
    row_of = {(m, n): j * len(neurons) + at[n] for j, m in enumerate(methods) for n in neurons}
    effects = neuron_effects(model, scoring.probe, neurons, scoring.kl_targets)
    ids = {k: content_ids(model, t) for k, t in zip(row_of, flat)}
    rows = []
    for n in neurons:
        p1, p2 = pairs[n]
        per_target = effects[at[n]]
        row = {
            "neuron": n,
            "layer": scoring.layer,
            "unit": _number(float(scoring.unit[n])),
            "partners": [p1, p2],
            "clamp": {f"{e.kl_target:g}": {"strength": e.strength, "kl": e.kl} for e in per_target},
            "methods": {},
        }
        for m in methods:
            own, first = row_of[m, n], row_of[m, p1]
            s3 = {
                f"{e.kl_target:g}": [text_effect(e.change, ids[m, x]) for x in (n, p1, p2)]
                for e in per_target
            }
            means = [_mean([v[i] for v in s3.values()]) for i in range(3)]
            s4 = None
            if scoring.contexts is not None:
                s4 = prediction_score(
                    model, scoring.contexts, n, texts[m][at[n]], scoring.s4_per_side, scoring.seed
                )
            row["methods"][m] = {
                "text": flat[own],
                "s1": _number(float(s1_all[own, n])),
                "s1_control": _number(float(s1_all[first, n])),
                "s2": rank_of(s1_all[own], n),
                "s3": means[0],
                "s3_control": means[1],
                "s3_per_target": {k: v[0] for k, v in s3.items()},
                "one_of_three": {k: one_of_three(*v) for k, v in s3.items()},
                "s4": s4,
                "fluency": fluency[own],
            }
        rows.append(row)
    return rows


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if len(kept) == len(values) and kept else None

"""The distribution of each score over the sweep, against its control, and the neurons where
the observed and the caused views agree most and least."""

from __future__ import annotations

import statistics

PAIRS = [
    ("generation_score", "generation_baseline"),
    ("generation_score_plain", "generation_baseline_plain"),
    ("agreement", "agreement_baseline"),
]
SINGLE = ["stability_feature_overlap", "stability_same_text"]


def distribution(values: list[float]) -> dict | None:
    if not values:
        return None
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else values * 9
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "q10": q[0],
        "median": statistics.median(values),
        "q90": q[-1],
    }


def paired(rows: list[dict], score: str, control: str) -> dict:
    both = [(r[score], r[control]) for r in rows if r[score] is not None and r[control] is not None]
    return {
        "score": score,
        "control": control,
        "score_distribution": distribution([a for a, _ in both]),
        "control_distribution": distribution([b for _, b in both]),
        "fraction_above_control": sum(a > b for a, b in both) / len(both) if both else None,
        "mean_difference": statistics.fmean(a - b for a, b in both) if both else None,
    }


def agree_and_disagree(rows: list[dict], n: int = 10) -> dict:
    """Agree: the highest agreement, then the highest generation score. Disagree: the lowest
    agreement, then the highest generation score (the decoded text drives the neuron, yet its
    features are not those of the neuron's contexts)."""
    scored = [r for r in rows if r["generation_score"] is not None]
    agree = sorted(scored, key=lambda r: (-r["agreement"], -r["generation_score"]))[:n]
    disagree = sorted(scored, key=lambda r: (r["agreement"], -r["generation_score"]))[:n]
    return {"agree": [r["neuron"] for r in agree], "disagree": [r["neuron"] for r in disagree]}


def summarise(rows: list[dict]) -> dict:
    single = {}
    for key in SINGLE:
        single[key] = distribution([r[key] for r in rows if r.get(key) is not None])
    return {
        "n_neurons": len(rows),
        "paired": [paired(rows, s, c) for s, c in PAIRS],
        "seed_stability": single,
        **agree_and_disagree(rows),
    }


def summary_lines(summary: dict) -> list[str]:
    lines = [f"{summary['n_neurons']} neurons"]
    for p in summary["paired"]:
        s, c = p["score_distribution"], p["control_distribution"]
        if s is None:
            continue
        lines.append(
            f"{p['score']}: median {s['median']:.3f} (q10 {s['q10']:.3f}, q90 {s['q90']:.3f}) vs "
            f"{p['control']} median {c['median']:.3f}; above the control on "
            f"{100 * p['fraction_above_control']:.0f}% of neurons"
        )
    for key, d in summary["seed_stability"].items():
        if d is not None:
            lines.append(f"{key}: mean {d['mean']:.3f}, median {d['median']:.3f}")
    return lines

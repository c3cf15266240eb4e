"""Issue 26's "explained" rule and the per-method table.

A neuron is explained by a method when, for that method's text E:
- S1 is above the 95th percentile of its control (S1 of the neuron on another neuron's text of the
  same method, pooled over the run's neurons),
- the true neuron is in the top 10 of S2, and
- S3 is above the 95th percentile of its control (the other neuron's text under the same clamp).
Each row holds, per method, `s1`, `s1_control`, `s2` (`ranking.rank_of`), `s3` and `s3_control`
(the mean over the KL targets), `one_of_three` (per target), `s4` and `fluency`. The table per
method: the fraction explained (with a bootstrap interval over neurons), S1's median, S2's MRR and
top-10, S3's 1-of-3 accuracy, S4's median and the median fluency; the union of the methods;
paired tests against M0 (exact McNemar on "explained", sign test on S1).
"""

from __future__ import annotations

import math
import statistics

import torch
from scipy.stats import binomtest

CONTROL_QUANTILE = 0.95


def quantile(values: list[float], q: float) -> float | None:
    return float(torch.quantile(torch.tensor(values, dtype=torch.float64), q)) if values else None


def thresholds(rows: list[dict], method: str) -> dict[str, float | None]:
    """The 95th percentiles of the S1 and S3 controls of `method` over `rows`."""
    scores = [r["methods"][method] for r in rows]
    s1 = [s["s1_control"] for s in scores if s["s1_control"] is not None]
    s3 = [s["s3_control"] for s in scores if s["s3_control"] is not None]
    return {"s1": quantile(s1, CONTROL_QUANTILE), "s3": quantile(s3, CONTROL_QUANTILE)}


def is_explained(score: dict, limits: dict[str, float | None]) -> bool:
    s1, s2, s3 = score["s1"], score["s2"], score["s3"]
    return (
        s1 is not None and limits["s1"] is not None and s1 > limits["s1"]
        and s2 is not None and bool(s2["top10"])
        and s3 is not None and limits["s3"] is not None and s3 > limits["s3"]
    )  # fmt: skip


def explained(rows: list[dict], methods: list[str]) -> dict[str, list[bool]]:
    """Per method, per row: explained or not."""
    out = {}
    for m in methods:
        limits = thresholds(rows, m)
        out[m] = [is_explained(r["methods"][m], limits) for r in rows]
    return out


def bootstrap_interval(flags: list[bool], n: int = 1000, seed: int = 0) -> list[float] | None:
    """95% percentile interval of the fraction of True over `n` resamples of the neurons."""
    if not flags:
        return None
    x = torch.tensor(flags, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    means = x[torch.randint(len(x), (n, len(x)), generator=g)].mean(1)
    return [float(torch.quantile(means, 0.025)), float(torch.quantile(means, 0.975))]


def mcnemar(a: list[bool], b: list[bool]) -> dict:
    """Exact McNemar: a binomial test on the pairs where exactly one of the two is True."""
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    n = only_a + only_b
    p = binomtest(only_a, n).pvalue if n else 1.0
    return {"only_method": only_a, "only_reference": only_b, "p_value": float(p)}


def sign_test(a: list[float | None], b: list[float | None]) -> dict:
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and x != y]
    above = sum(x > y for x, y in pairs)
    p = binomtest(above, len(pairs)).pvalue if pairs else 1.0
    return {"above": above, "below": len(pairs) - above, "p_value": float(p)}


def _median(values: list) -> float | None:
    kept = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(kept) if kept else None


def _mean(values: list) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def method_table(rows: list[dict], methods: list[str], reference: str | None) -> dict:
    """The per-method table (rows in `methods` order), the union, and paired tests against
    `reference` (M0) when it is among the methods."""
    flags = explained(rows, methods)
    table = []
    for m in methods:
        scores = [r["methods"][m] for r in rows]
        s2 = [s["s2"] for s in scores]
        targets = sorted({k for s in scores for k in s["one_of_three"]})
        entry = {
            "method": m,
            "n_neurons": len(rows),
            "fraction_explained": _mean(flags[m]),
            "explained_interval": bootstrap_interval(flags[m]),
            "s1_median": _median([s["s1"] for s in scores]),
            "s1_control_q95": thresholds(rows, m)["s1"],
            "s2_mrr": _mean([x["reciprocal_rank"] if x else 0.0 for x in s2]),
            "s2_top1": _mean([bool(x and x["top1"]) for x in s2]),
            "s2_top10": _mean([bool(x and x["top10"]) for x in s2]),
            "s2_auroc_median": _median([x["auroc"] if x else None for x in s2]),
            "s3_median": _median([s["s3"] for s in scores]),
            "s3_control_q95": thresholds(rows, m)["s3"],
            "s3_one_of_three": {k: _mean([s["one_of_three"][k] for s in scores]) for k in targets},
            "s4_median": _median([s["s4"] for s in scores]),
            "fluency_median": _median([s["fluency"] for s in scores]),
        }
        if reference is not None and reference != m and reference in methods:
            entry["against_" + reference] = {
                "explained": mcnemar(flags[m], flags[reference]),
                "s1": sign_test(
                    [s["s1"] for s in scores], [r["methods"][reference]["s1"] for r in rows]
                ),
            }
        table.append(entry)
    union = [any(flags[m][i] for m in methods) for i in range(len(rows))]
    return {
        "methods": table,
        "union": {
            "fraction_explained": _mean(union),
            "explained_interval": bootstrap_interval(union),
        },
        "explained": flags,
    }


def table_lines(summary: dict) -> list[str]:
    """The table as Markdown."""

    def f(v, digits=3):
        return "-" if v is None else f"{v:.{digits}f}"

    lines = [
        "| method | explained [95% CI] | S1 median | S2 MRR | S2 top-10 | S3 1-of-3 | S4 median "
        "| fluency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in summary["methods"]:
        ci = e["explained_interval"] or [None, None]
        one = " / ".join(f(v, 2) for v in e["s3_one_of_three"].values()) or "-"
        lines.append(
            f"| {e['method']} | {f(e['fraction_explained'], 2)} [{f(ci[0], 2)}, {f(ci[1], 2)}] | "
            f"{f(e['s1_median'])} | {f(e['s2_mrr'])} | {f(e['s2_top10'], 2)} | {one} | "
            f"{f(e['s4_median'])} | {f(e['fluency_median'], 2)} |"
        )
    u = summary["union"]
    lines.append(f"| union | {f(u['fraction_explained'], 2)} | | | | | | |")
    return lines

"""What the benchmark's rows say beyond the per-method table (issue 26's closing note): the
union over the methods proper (the controls left out), and the neurons whose texts to read:
where one method and the reference (M0) disagree, and where one method alone explains.

`flags` is `explained.explained(rows, names)`: per method, per row, explained or not.
"""

from __future__ import annotations

from circuitforge.explanations.benchmark.controls import CONTROLS
from circuitforge.explanations.benchmark.explained import thresholds


def proper_methods(names: list[str]) -> list[str]:
    """The method names that are not controls, in their order."""
    return [n for n in names if n not in CONTROLS]


def union_flags(flags: dict[str, list[bool]], names: list[str]) -> list[bool]:
    """Per row: explained by at least one of `names`."""
    if not names:
        raise ValueError("the union needs at least one method")
    missing = [n for n in names if n not in flags]
    if missing:
        raise ValueError(f"no explained flags for {missing} (have {sorted(flags)})")
    return [any(flags[n][i] for n in names) for i in range(len(flags[names[0]]))]


def criteria(rows: list[dict], method: str) -> dict[str, float]:
    """The fraction of rows passing each of the explained rule's three conditions alone (which
    one holds a method back): S1 above its control's 95th percentile, S2 in the top 10, S3 above
    its control's 95th percentile."""
    if not rows:
        raise ValueError("no rows")
    limits = thresholds(rows, method)
    scores = [r["methods"][method] for r in rows]

    def above(score: float | None, limit: float | None) -> bool:
        return score is not None and limit is not None and score > limit

    return {
        "s1": sum(above(s["s1"], limits["s1"]) for s in scores) / len(rows),
        "s2_top10": sum(bool(s["s2"] and s["s2"]["top10"]) for s in scores) / len(rows),
        "s3": sum(above(s["s3"], limits["s3"]) for s in scores) / len(rows),
    }


def _entry(row: dict, names: list[str], flags: dict[str, list[bool]], i: int) -> dict:
    return {
        "neuron": row["neuron"],
        "explained_by": [n for n in names if flags[n][i]],
        "texts": {n: row["methods"][n]["text"] for n in names},
        "s1": {n: row["methods"][n]["s1"] for n in names},
        "s2_rank": {n: (row["methods"][n]["s2"] or {}).get("rank") for n in names},
    }


def disagreements(
    rows: list[dict], flags: dict[str, list[bool]], ours: str, reference: str, limit: int
) -> list[dict]:
    """Up to `limit` rows (in row order) where exactly one of `ours` and `reference` explains."""
    out = []
    for i, row in enumerate(rows):
        if flags[ours][i] != flags[reference][i]:
            out.append(_entry(row, [ours, reference], flags, i))
            if len(out) == limit:
                break
    return out


def sole_explanations(
    rows: list[dict], flags: dict[str, list[bool]], ours: str, names: list[str], limit: int
) -> list[dict]:
    """Up to `limit` rows (in row order) where `ours` explains and no other of `names` does."""
    others = [n for n in names if n != ours]
    out = []
    for i, row in enumerate(rows):
        if flags[ours][i] and not any(flags[n][i] for n in others):
            out.append(_entry(row, names, flags, i))
            if len(out) == limit:
                break
    return out

"""The benchmark's summary figure (issue 26, item 5) as one self-contained SVG: the fraction of
neurons each method explains (with its bootstrap interval), and the distributions of S1
(sufficiency), S2 (the true neuron's rank, log scale) and S3 (output effect) per method as boxes
(quartiles, median; whiskers at the 5th and 95th percentiles). Every mark carries its numbers in
data- attributes, so a test can read the drawing back."""

from __future__ import annotations

import html
import math

import torch

ROW = 22  # height of one method's row
LABEL = 170  # width of the method names
PANEL = 230  # width of one panel's plot area
GAP = 40


def _quantiles(values: list[float]) -> list[float] | None:
    """The 5th, 25th, 50th, 75th and 95th percentiles, or None without values."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    if not kept:
        return None
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
    return torch.quantile(torch.tensor(kept, dtype=torch.float64), q).tolist()


class _Axis:
    def __init__(self, low: float, high: float, log: bool) -> None:
        if log and low <= 0:
            raise ValueError(f"a log axis needs a positive start, got {low}")
        self.log = log
        self.low, self.high = (math.log10(low), math.log10(high)) if log else (low, high)
        if self.high <= self.low:
            self.high = self.low + 1.0

    def x(self, value: float) -> float:
        v = math.log10(max(value, 10**self.low)) if self.log else value
        v = min(max(v, self.low), self.high)
        return PANEL * (v - self.low) / (self.high - self.low)


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 11) -> str:
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}'>"
        f"{html.escape(s)}</text>"
    )


def _ticks(axis: _Axis, left: float, bottom: float, label: str) -> list[str]:
    if axis.log:
        values = [10**k for k in range(math.ceil(axis.low), math.floor(axis.high) + 1)]
    else:
        values = [axis.low + (axis.high - axis.low) * k / 4 for k in range(5)]
    parts = [f"<line x1='{left}' y1='{bottom}' x2='{left + PANEL}' y2='{bottom}' stroke='#999'/>"]
    for v in values:
        x = left + axis.x(v)
        parts.append(
            f"<line x1='{x:.1f}' y1='{bottom}' x2='{x:.1f}' y2='{bottom + 4}' stroke='#999'/>"
        )
        parts.append(_text(x, bottom + 15, f"{v:g}" if axis.log else f"{v:.2g}", "middle", 10))
    parts.append(_text(left + PANEL / 2, bottom + 29, label, "middle"))
    return parts


def _bars(summary: dict, names: list[str], left: float, top: float) -> list[str]:
    entries = {e["method"]: e for e in summary["methods"]}
    axis = _Axis(0.0, 1.0, False)
    parts = [_text(left, top - 8, "fraction explained (95% CI)", size=12)]
    for i, m in enumerate(names):
        e = entries[m]
        value = e["fraction_explained"] or 0.0
        y = top + i * ROW
        parts.append(
            f"<rect class='bar' data-method='{html.escape(m)}' data-value='{value:.6g}' "
            f"x='{left}' y='{y + 4}' width='{axis.x(value):.2f}' height='{ROW - 8}' "
            "fill='#5b7fc7'/>"
        )
        ci = e.get("explained_interval")
        if ci:
            x0, x1, mid = left + axis.x(ci[0]), left + axis.x(ci[1]), y + ROW / 2
            parts.append(
                f"<line class='interval' x1='{x0:.2f}' y1='{mid}' x2='{x1:.2f}' y2='{mid}' "
                "stroke='#222'/>"
            )
    bottom = top + len(names) * ROW + 4
    return parts + _ticks(axis, left, bottom, "fraction of neurons")


def _boxes(
    title: str, values: dict[str, list[float]], names: list[str], left: float, top: float,
    log: bool, key: str,
) -> list[str]:  # fmt: skip
    stats = {m: _quantiles(values[m]) for m in names}
    found = [q for q in stats.values() if q is not None]
    low = min((q[0] for q in found), default=1.0 if log else 0.0)
    high = max((q[4] for q in found), default=1.0)
    axis = _Axis(max(low, 1.0) if log else min(low, 0.0), high, log)
    parts = [_text(left, top - 8, title, size=12)]
    for i, m in enumerate(names):
        q = stats[m]
        if q is None:
            continue
        y = top + i * ROW
        x = [left + axis.x(v) for v in q]
        data = " ".join(f"{v:.6g}" for v in q)
        parts.append(
            f"<g class='box' data-score='{key}' data-method='{html.escape(m)}' "
            f"data-quantiles='{data}'>"
            f"<line x1='{x[0]:.2f}' y1='{y + ROW / 2}' x2='{x[4]:.2f}' y2='{y + ROW / 2}' "
            "stroke='#555'/>"
            f"<rect x='{x[1]:.2f}' y='{y + 5}' width='{max(x[3] - x[1], 1):.2f}' "
            f"height='{ROW - 10}' fill='#cfe0f7' stroke='#335'/>"
            f"<line x1='{x[2]:.2f}' y1='{y + 3}' x2='{x[2]:.2f}' y2='{y + ROW - 3}' "
            "stroke='#c22' stroke-width='2'/></g>"
        )
    bottom = top + len(names) * ROW + 4
    return parts + _ticks(axis, left, bottom, title.split(":")[0])


def score_values(rows: list[dict], names: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per score (s1, s2_rank, s3), per method: the values over the rows (None left out)."""
    out: dict[str, dict[str, list[float]]] = {"s1": {}, "s2_rank": {}, "s3": {}}
    for m in names:
        scores = [r["methods"][m] for r in rows]
        out["s1"][m] = [s["s1"] for s in scores if s["s1"] is not None]
        out["s2_rank"][m] = [float(s["s2"]["rank"]) for s in scores if s["s2"]]
        out["s3"][m] = [s["s3"] for s in scores if s["s3"] is not None]
    return out


def summary_figure(summary: dict, rows: list[dict], names: list[str]) -> str:
    """The SVG (a string) of `summary` (`explained.method_table`) over `rows`, methods `names`."""
    if not names:
        raise ValueError("the figure needs at least one method")
    values = score_values(rows, names)
    top = 28
    panels = [
        _bars(summary, names, LABEL, top),
        _boxes("S1: max on E over the 99.9th pct", values["s1"], names,
               LABEL + (PANEL + GAP), top, False, "s1"),
        _boxes("S2: rank of the true neuron", values["s2_rank"], names,
               LABEL + 2 * (PANEL + GAP), top, True, "s2_rank"),
        _boxes("S3: output effect (log-prob change)", values["s3"], names,
               LABEL + 3 * (PANEL + GAP), top, False, "s3"),
    ]  # fmt: skip
    labels = [_text(LABEL - 8, top + i * ROW + ROW / 2 + 4, m, "end") for i, m in enumerate(names)]
    width = LABEL + 4 * (PANEL + GAP)
    height = top + len(names) * ROW + 44
    body = "".join(labels + [p for panel in panels for p in panel])
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' id='summary-figure' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' font-family='sans-serif'>{body}</svg>"
    )

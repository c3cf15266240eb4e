"""The explanation benchmark's table (issue 26) from a run's folder, finished or not.

    python scripts/benchmark_table.py runs/benchmark_gemma3_l9_heldout/version_0 --json out.json

Reads the rows of `results/neuron_explanations_benchmark.json` when the run finished, else of
its snapshots (`benchmark_snapshot/rank_*.pt`: every chunk finished so far), and prints Markdown:
the per-method table (`explained.method_table`), the union over the methods proper (controls
left out), the paired tests against M0, the cost per neuron per method, and the texts of the
neurons where `--ours` and M0 disagree and where `--ours` alone explains. `--json` also writes
all of it (and the rows) to a file, `--html` the page (`benchmark/page.py`: table, figure, texts),
`--svg` the summary figure alone (`benchmark/figure.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callbacks.explanation_benchmark_export import costs  # noqa: E402
from circuitforge.checkpoints import read_checkpoint  # noqa: E402
from circuitforge.explanations.benchmark.explained import (  # noqa: E402
    bootstrap_interval,
    method_table,
    table_lines,
)
from circuitforge.explanations.benchmark.figure import summary_figure  # noqa: E402
from circuitforge.explanations.benchmark.page import benchmark_page  # noqa: E402
from circuitforge.explanations.benchmark.report import (  # noqa: E402
    criteria,
    disagreements,
    proper_methods,
    sole_explanations,
    union_flags,
)

REFERENCE = "m0_context"


def read_rows(run: Path) -> tuple[list[dict], str]:
    """The run's rows (neuron order of the split for a finished run, chunk order otherwise)."""
    finished = run / "results" / "neuron_explanations_benchmark.json"
    if finished.is_file():
        return json.loads(finished.read_text())["rows"], str(finished)
    snapshots = sorted((run / "benchmark_snapshot").glob("rank_*.pt"))
    if not snapshots:
        raise FileNotFoundError(f"{run} holds neither {finished.name} nor benchmark_snapshot/")
    rows = [r for path in snapshots for r in read_checkpoint(path)["rows"]]
    return rows, ", ".join(str(p) for p in snapshots)


def report(rows: list[dict], ours: str, limit: int) -> dict:
    if not rows:
        raise ValueError("no scored rows yet: nothing to tabulate")
    names = list(rows[0]["methods"])
    if ours not in names or REFERENCE not in names:
        raise ValueError(f"--ours {ours!r} and {REFERENCE} must be among the methods {names}")
    summary = method_table(rows, names, REFERENCE)
    flags = summary["explained"]
    proper = proper_methods(names)
    union = union_flags(flags, proper)
    return {
        "n_neurons": len(rows),
        "neurons": [r["neuron"] for r in rows],
        "summary": summary,
        "union_of_methods": {
            "methods": proper,
            "fraction_explained": sum(union) / len(union),
            "explained_interval": bootstrap_interval(union),
        },
        "criteria": {m: criteria(rows, m) for m in names},
        "costs": costs(rows),
        "disagreements": disagreements(rows, flags, ours, REFERENCE, limit),
        "sole": sole_explanations(rows, flags, ours, proper, limit),
    }


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(found: dict, ours: str) -> list[str]:
    summary = found["summary"]
    lines = [f"{found['n_neurons']} neurons", "", *table_lines(summary), ""]
    u = found["union_of_methods"]
    ci = u["explained_interval"]
    lines.append(
        f"union of {', '.join(u['methods'])}: {_f(u['fraction_explained'], 3)} "
        f"[{_f(ci[0], 3)}, {_f(ci[1], 3)}]"
    )
    lines += ["", "| method | S1 control q95 | S3 control q95 | only it / only M0 (McNemar p) "
              "| S1 above / below M0 (sign p) | passes S1 / S2 / S3 alone |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for e in summary["methods"]:
        test = e.get("against_" + REFERENCE)
        paired = "| | |"
        if test:
            x, s = test["explained"], test["s1"]
            paired = (
                f"| {x['only_method']} / {x['only_reference']} ({x['p_value']:.3g}) "
                f"| {s['above']} / {s['below']} ({s['p_value']:.3g}) |"
            )
        alone = " / ".join(_f(v, 2) for v in found["criteria"][e["method"]].values())
        lines.append(
            f"| {e['method']} | {_f(e['s1_control_q95'])} | {_f(e['s3_control_q95'])} {paired}"
            f" {alone} |"
        )
    lines += ["", "| cost | s per neuron | h per 1,000 neurons |", "|---|---|---|"]
    for name, c in found["costs"].items():
        lines.append(
            f"| {name} | {c['seconds_per_neuron']:.2f} | {c['hours_per_1000_neurons']:.2f} |"
        )
    for title, entries in (
        (f"{ours} and {REFERENCE} disagree", found["disagreements"]),
        (f"{ours} alone explains", found["sole"]),
    ):
        lines += ["", f"### {title}: {len(entries)}", ""]
        for e in entries:
            by = ", ".join(e["explained_by"]) or "none"
            lines.append(f"**{e['neuron']}** (explained by: {by})")
            for name, text in e["texts"].items():
                rank = e["s2_rank"][name]
                shown = text.replace("\n", "\\n")
                lines.append(f"- {name} (S1 {_f(e['s1'][name], 2)}, S2 rank {rank}): `{shown}`")
            lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="The explanation benchmark's table from a run's folder."
    )
    parser.add_argument("run", type=Path, help="the run's version folder")
    parser.add_argument("--ours", default="m2_patchscope", help="the method compared with M0")
    parser.add_argument("--limit", type=int, default=10, help="texts listed per kind")
    parser.add_argument("--json", type=Path, help="also write everything here")
    parser.add_argument("--html", type=Path, help="also write the page (table, figure, texts)")
    parser.add_argument("--svg", type=Path, help="also write the summary figure alone")
    args = parser.parse_args(argv)
    rows, source = read_rows(args.run)
    found = report(rows, args.ours, args.limit)
    print(f"rows from {source}")
    print("\n".join(markdown(found, args.ours)))
    if args.json:
        args.json.write_text(json.dumps({**found, "source": source, "rows": rows}, indent=1))
    if args.svg:
        names = [e["method"] for e in found["summary"]["methods"]]
        args.svg.write_text(summary_figure(found["summary"], rows, names))
    if args.html:
        notes = [f"{found['n_neurons']} neurons, rows from {source}"]
        title = f"Explanation benchmark: {args.run}"
        args.html.write_text(benchmark_page(title, notes, found["summary"], rows))


if __name__ == "__main__":
    main()

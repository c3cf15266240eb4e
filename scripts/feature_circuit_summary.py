"""A per-position feature circuit's page, summarised in markdown (issue 25 item 5's tables).

    python scripts/feature_circuit_summary.py runs/<name>/version_N/results/feature_circuit.html
    python scripts/feature_circuit_summary.py docs/gemma3_ioi_graph/feature_circuit.html

Reads the graph the page embeds (`graph-data`: every kept node's score, token and top corpus
contexts) and, beside it, `feature_circuit.json` when there is one (the quality curve and the
error terms' share of all scores). Prints: the quality curve; per point, the error nodes' share of
the kept nodes' |score| among the strongest `--per-point` nodes (the circuit of that many nodes
per point); the strongest nodes, and each feature's strongest contexts (the token where it fires
most in [brackets]).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def graph_of(page: Path) -> dict:
    found = re.search(
        r"<script type='application/json' id='graph-data'>(.*?)</script>", page.read_text(), re.S
    )
    if found is None:
        raise SystemExit(f"{page}: no graph-data in this page")
    return json.loads(found.group(1))


def point_of(node: dict) -> str:
    return node["id"].split("/")[0]


def context_text(context: dict) -> str:
    tokens, acts = context["tokens"], context["activations"]
    peak = max(range(len(acts)), key=lambda i: acts[i])
    text = "".join(f"[{t}]" if i == peak else t for i, t in enumerate(tokens))
    return " ".join(text.split()).replace("|", "\\|")


def kept_error_shares(nodes: list[dict], per_point: int) -> list[tuple[str, int, int, float]]:
    """Per point: (point, error nodes, nodes, error |score| / all |score|) among its
    `per_point` strongest kept nodes."""
    rows = []
    for point in sorted({point_of(n) for n in nodes}, key=lambda p: int(p[5:])):
        mine = sorted(
            (n for n in nodes if point_of(n) == point and n["kind"] != "embedding"),
            key=lambda n: -abs(n["score"]),
        )[:per_point]
        errors = [n for n in mine if n["kind"] == "error"]
        total = sum(abs(n["score"]) for n in mine)
        share = sum(abs(n["score"]) for n in errors) / total if total else float("nan")
        rows.append((point, len(errors), len(mine), share))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description="a feature circuit page in markdown")
    p.add_argument("page", type=Path)
    p.add_argument("--per-point", type=int, nargs="+", default=[30])
    p.add_argument("--top", type=int, default=12, help="strongest nodes listed")
    p.add_argument("--contexts", type=int, default=2, help="contexts per listed feature")
    args = p.parse_args()
    nodes = [n for n in graph_of(args.page)["nodes"] if n.get("kind") in ("feature", "error")]
    result = args.page.with_name("feature_circuit.json")
    if result.is_file():
        found = json.loads(result.read_text())
        metric = found["metric"]
        print(f"full {metric['full']:.2f}, empty {metric['empty']:.2f} (logit difference)\n")
        print("| nodes per point | nodes | faithfulness | completeness |\n|---|---|---|---|")
        for row in found["quality_curve"]:
            print(
                f"| {row['nodes_per_point']} | {row['nodes']} | {row['faithfulness']:.2f} "
                f"| {row['completeness']:.2f} |"
            )
        if "error_shares" in found:
            print(
                "\n| point | features' sum | errors' sum | error share | error share of |score| |"
            )
            print("|---|---|---|---|---|")
            for r in found["error_shares"]:
                print(
                    f"| {r['point']} | {r['feature_sum']:+.2f} | {r['error_sum']:+.2f} "
                    f"| {r['error_share']:.2f} | {r['error_abs_share']:.2f} |"
                )
    for n in args.per_point:
        print(f"\nkept nodes, {n} per point: error nodes and their share of the kept |score|")
        print("| point | error nodes | nodes | error share |\n|---|---|---|---|")
        for point, errors, total, share in kept_error_shares(nodes, n):
            print(f"| {point} | {errors} | {total} | {share:.2f} |")
    print(f"\nthe {args.top} strongest nodes")
    print("| node | score | token | strongest contexts |\n|---|---|---|---|")
    for node in sorted(nodes, key=lambda n: -abs(n["score"]))[: args.top]:
        token = node.get("details", {}).get("token", "")
        contexts = " / ".join(context_text(c) for c in node.get("contexts", [])[: args.contexts])
        print(f"| {node['id']} | {node['score']:+.2f} | {token!r} | {contexts} |")


if __name__ == "__main__":
    main()

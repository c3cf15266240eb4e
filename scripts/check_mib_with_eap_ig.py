"""Load our `circuit_mib.json` files with EAP-IG's own `Graph.from_json` and compare.

Checks that EAP-IG reads every edge with our score and kept flag, and, where the run swept
MIB's curve (`circuit.json` beside it has `sweep`), that EAP-IG's own `apply_topn` (signed
ranking, `int(fraction * n)` edges) followed by `prune` (run until nothing changes, as
`evaluate_graph` prunes again) keeps as many edges as our signed curve's points. Our learned
coefficients are ranked by their keep probability, monotone in the score this file holds, so
the signed rankings agree (EAP-IG breaks ties in any order; ours by edge order).

EAP-IG is not on PyPI; point this at a checkout of https://github.com/hannamw/EAP-IG (its
`src/eap/graph.py` needs only torch, einops, transformer-lens and numpy, all in our venv):

    .venv/bin/python scripts/check_mib_with_eap_ig.py --eap-ig /tmp/eapig \
        runs/edges_demo_ioi/version_0/results/circuit_mib.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eap-ig", type=Path, required=True, help="EAP-IG checkout")
    parser.add_argument("circuits", type=Path, nargs="+")
    args = parser.parse_args()
    sys.path.insert(0, str(args.eap_ig / "src"))
    from eap.graph import Graph

    for path in args.circuits:
        graph = Graph.from_json(str(path))
        ours = json.loads(path.read_text())["edges"]
        same = all(
            abs(float(graph.edges[name].score) - edge["score"]) < 1e-6
            and bool(graph.edges[name].in_graph) == edge["in_graph"]
            for name, edge in ours.items()
        )
        kept = sum(bool(e.in_graph) for e in graph.edges.values())
        print(
            f"{path}: EAP-IG read {len(graph.edges)} edges (ours {len(ours)}), {kept} in the "
            f"graph (ours {sum(e['in_graph'] for e in ours.values())}); scores and flags "
            f"equal: {same}"
        )
        results = path.with_name("circuit.json")
        if results.exists() and "sweep" in json.loads(results.read_text()):
            points = json.loads(results.read_text())["sweep"]["signed"]["points"]
            theirs = []
            for point in points:
                graph.apply_topn(int(point["fraction"] * len(graph.edges)), absolute=False)
                graph.prune()  # apply_topn's own prune can stop after one pass
                theirs.append(int(graph.count_included_edges()))
            ours_counts = [p["n_edges"] for p in points]
            print(
                f"  MIB curve, signed ranking: EAP-IG keeps {theirs} edges, ours {ours_counts}; "
                f"equal: {theirs == ours_counts}"
            )


if __name__ == "__main__":
    main()

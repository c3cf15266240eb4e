"""A circuit as one self-contained HTML file: an SVG graph, hover for a node's summary, click
for its details and its strongest links (no server, no network, no library).

Input is a plain graph: `nodes[{id, x, y, label, kind, score, details{...}}]` (x: column, e.g.
the token position or the head; y: row, e.g. the layer, drawn bottom-up) and
`links[{source, target, weight}]`. `feature_graph` and `edge_graph` build it from our feature
circuits and edge circuits. Texts go in with `textContent`, never as HTML.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

HERE = Path(__file__).parent
STYLE = (HERE / "graph_page.css").read_text()
SCRIPT = (HERE / "graph_page.js").read_text()  # the page's whole behaviour; no library


def graph_page(title: str, summary: list[str], graph: dict) -> str:
    data = json.dumps(graph, allow_nan=False).replace("</", "<\\/")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h2>{html.escape(title)}</h2><ul>{items}</ul><p id='count'></p>"
        "<div id='wrap'><svg id='graph'></svg><div id='details'>click a node</div></div>"
        "<div id='tip'></div>"
        f"<script type='application/json' id='graph-data'>{data}</script>"
        f"<script>(() => {{{SCRIPT}}})();</script></body></html>"
    )


def feature_graph(circuit: dict, point_order: list[str], tokens: list[str] | None) -> dict:
    """Our feature circuit JSON (`nodes`, `edges`) as a page graph: x = token position (0 for
    summed nodes), y = the point (in `point_order`, the order of the residual stream)."""
    nodes = []
    for n in circuit["nodes"]:
        point = n["id"].split("/")[0]
        details = {
            k: n[k] for k in ("hook_name", "feature", "position", "token", "activation",
                              "promoted", "suppressed", "url") if n.get(k) is not None
        }  # fmt: skip
        nodes.append(
            {
                "id": n["id"],
                "x": n["position"] if n.get("position") is not None else 0,
                "y": point_order.index(point),
                "label": (
                    f"{point} error" if n["feature"] == "error" else f"{point} #{n['feature']}"
                )
                + (f" at {n['token']!r}" if n.get("token") is not None else ""),
                "kind": "error" if n["feature"] == "error" else "feature",
                "score": n["score"],
                "details": details,
                **({"contexts": n["contexts"]} if n.get("contexts") else {}),
            }
        )
    x_labels = {i: f"{i} {t!r}" for i, t in enumerate(tokens)} if tokens else {0: "all positions"}
    return {
        "nodes": nodes,
        "links": circuit["edges"],
        "xLabels": x_labels,
        "yLabels": dict(enumerate(point_order)),
    }


def edge_graph(circuit: dict) -> dict:
    """Our edge circuit JSON (`edges` rows with `src`, `dest`, `kept`, `score`) as a page graph
    of the kept edges: y = layer (input at the bottom, logits at the top), x = head (MLPs to the
    right of the heads)."""
    kept = [e for e in circuit["edges"] if e.get("kept")]
    names = {e["src"] for e in kept} | {e["dest"] for e in kept}  # dest: a node, channel apart

    def place(name: str) -> tuple[int, int]:
        if name == "input":
            return 0, 0
        if name == "logits":
            return 0, 10**6
        if name.startswith("m"):
            return 1000, int(name[1:]) + 1
        layer, head = name.split(".")
        return int(head), int(layer) + 1

    nodes = []
    for name in sorted(names, key=place):
        x, y = place(name)
        nodes.append({"id": name, "x": x, "y": y, "label": name, "kind": "node", "details": {}})
    links = [
        {"source": e["src"], "target": e["dest"], "weight": float(e["score"]),
         "channel": e.get("channel")}
        for e in kept
    ]  # fmt: skip
    ys = sorted({n["y"] for n in nodes})
    y_labels = {y: "input" if y == 0 else "logits" if y == 10**6 else f"layer {y - 1}" for y in ys}
    x_labels = {x: "MLP" if x == 1000 else f"head {x}" for x in {n["x"] for n in nodes}}
    x_labels[0] = "head 0 / input / logits"
    return {"nodes": nodes, "links": links, "xLabels": x_labels, "yLabels": y_labels}

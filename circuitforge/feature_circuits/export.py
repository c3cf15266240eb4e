"""A feature circuit as data and as a picture.

Nodes: `{id, layer, sublayer, hook_name, feature ("error" for the error term), position
(null: summed over positions), score, promoted, suppressed, url}`; `promoted`/`suppressed` are
the tokens the feature's decoder direction raises/lowers most through the unembedding (its
direct logit effect). Edges: `{source, target, weight}`.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw
from transformer_lens import HookedTransformer

from circuitforge.feature_circuits.edges import ERROR, KeptNodes
from circuitforge.feature_circuits.points import SAEPoint


def node_id(point: SAEPoint, feature: int) -> str:
    return f"{point.name}/{'error' if feature == ERROR else feature}"


@torch.no_grad()
def direct_logit_tokens(
    model: HookedTransformer, point: SAEPoint, feature: int, n: int = 5
) -> tuple[list[str], list[str]]:
    direction = point.decoder[feature].to(model.W_U.device)
    if point.hook_name.endswith("attn.hook_z"):
        w_o = model.blocks[point.layer].attn.W_O  # [head d_head d_model]
        direction = direction @ w_o.reshape(-1, w_o.shape[-1]).float()
    logits = direction @ model.W_U.float()
    decode = model.tokenizer.decode if model.tokenizer is not None else str
    up = [decode([int(i)]) for i in logits.topk(n).indices]
    down = [decode([int(i)]) for i in (-logits).topk(n).indices]
    return up, down


def circuit_json(
    model: HookedTransformer,
    points: list[SAEPoint],
    features: list[torch.Tensor],
    errors: list[float],
    kept: list[KeptNodes],
    edges: dict[tuple[int, int], torch.Tensor],
) -> dict:
    nodes = []
    for point, f, e, k in zip(points, features, errors, kept):
        for feature in k.indices():
            node = {
                "id": node_id(point, feature),
                "layer": point.layer,
                "sublayer": point.sublayer,
                "hook_name": point.hook_name,
                "feature": "error" if feature == ERROR else feature,
                "position": None,
                "score": e if feature == ERROR else float(f[feature]),
            }
            if feature != ERROR:
                node["promoted"], node["suppressed"] = direct_logit_tokens(model, point, feature)
                url = point.sae.feature_url(feature)
                if url is not None:
                    node["url"] = url
            nodes.append(node)
    rows = []
    for (p, q), table in edges.items():
        for i, u in enumerate(kept[p].indices()):
            for j, d in enumerate(kept[q].indices()):
                rows.append(
                    {
                        "source": node_id(points[p], u),
                        "target": node_id(points[q], d),
                        "weight": float(table[i, j]),
                    }
                )
    return {"nodes": nodes, "edges": rows}


def circuit_picture(graph: dict, max_edges: int = 200, width: int = 1200) -> Image.Image:
    """Points left to right, nodes top to bottom by |score|; edge colour = sign, width = size."""
    columns: dict[str, list[dict]] = {}
    for node in graph["nodes"]:
        columns.setdefault(node["id"].split("/")[0], []).append(node)
    for column in columns.values():
        column.sort(key=lambda n: -abs(n["score"]))
    rows = max(len(c) for c in columns.values()) if columns else 1
    height = 60 + 22 * rows
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    step = width / (len(columns) + 1)
    where = {}
    for c, (name, column) in enumerate(columns.items()):
        x = step * (c + 1)
        draw.text((x - 20, 8), name, fill="black")
        for r, node in enumerate(column):
            where[node["id"]] = (x, 40 + 22 * r)
    edges = sorted(graph["edges"], key=lambda e: -abs(e["weight"]))[:max_edges]
    top = max((abs(e["weight"]) for e in edges), default=1.0) or 1.0
    for e in edges:
        if e["source"] in where and e["target"] in where:
            colour = (40, 90, 220) if e["weight"] > 0 else (220, 60, 40)
            draw.line(
                [where[e["source"]], where[e["target"]]],
                fill=colour,
                width=max(1, round(4 * abs(e["weight"]) / top)),
            )
    for node in graph["nodes"]:
        x, y = where[node["id"]]
        draw.ellipse(
            [x - 5, y - 5, x + 5, y + 5], fill=(40, 90, 220) if node["score"] > 0 else (220, 60, 40)
        )
        draw.text((x + 8, y - 6), str(node["feature"]), fill="black")
    return image

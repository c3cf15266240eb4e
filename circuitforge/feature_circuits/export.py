"""A feature circuit as data and as a picture.

Nodes: `{id, layer, sublayer, hook_name, feature ("error" for the error term), position
(null: summed over positions; else the token position of a per-position node), score,
promoted, suppressed, url}`, per-position features also `activation` (and `contexts`, where the
export reads a corpus); `promoted`/`suppressed` are
the tokens the feature's decoder direction raises/lowers most through the unembedding (its
direct logit effect). Edges: `{source, target, weight}`.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw
from transformer_lens import HookedTransformer

from circuitforge.feature_circuits.edges import ERROR, KeptNodes
from circuitforge.feature_circuits.points import SAEPoint
from circuitforge.feature_circuits.positions import PositionNodes
from circuitforge.model import hooks
from circuitforge.model.internals import head_output_weights
from circuitforge.model.tokenizer import decode


def node_id(point: SAEPoint, feature: int, position: int | None = None) -> str:
    name = f"{point.name}/{'error' if feature == ERROR else feature}"
    return name if position is None else f"{name}@{position}"


def node_keys(kept: KeptNodes | PositionNodes) -> list[tuple[int | None, int]]:
    """(position or None, feature or ERROR) of each kept node, in the edge tables' order."""
    if isinstance(kept, PositionNodes):
        return list(kept.nodes)
    return [(None, f) for f in kept.indices()]


@torch.no_grad()
def direct_logit_tokens(
    model: HookedTransformer, point: SAEPoint, feature: int, n: int = 5
) -> tuple[list[str], list[str]]:
    direction = point.decoder[feature].to(model.W_U.device)
    if point.hook_name == hooks.attn_z(point.layer):
        w_o = head_output_weights(model, point.layer)  # [head d_head d_model]
        direction = direction @ w_o.reshape(-1, w_o.shape[-1]).float()
    logits = direction @ model.W_U.float()
    tokenizer = model.tokenizer

    def text(i: int) -> str:
        return str([i]) if tokenizer is None else decode(tokenizer, [i])

    up = [text(int(i)) for i in logits.topk(n).indices]
    down = [text(int(i)) for i in (-logits).topk(n).indices]
    return up, down


def circuit_json(
    model: HookedTransformer,
    points: list[SAEPoint],
    features: list[torch.Tensor],
    errors: list,
    kept: list[KeptNodes] | list[PositionNodes],
    edges: dict[tuple[int, int], torch.Tensor],
    tokens: list[str] | None = None,
    activations: list[torch.Tensor] | None = None,
    embedding_edges: torch.Tensor | None = None,
) -> dict:
    """Nodes and edges; per-position nodes carry their `position` (and `token`, when the
    prompt's `tokens` are given, and `activation`, the feature's mean clean activation there,
    when `activations` [pos d_sae] per point are), and their score is the effect there.
    `embedding_edges` [pos, first point's nodes] become `embedding_edges` rows from
    `embedding@{position}`."""
    nodes = []
    logit_tokens: dict[tuple[int, int], tuple[list[str], list[str]]] = {}
    for i, (point, f, e, k) in enumerate(zip(points, features, errors, kept)):
        for position, feature in node_keys(k):
            at = () if position is None else (position,)
            node = {
                "id": node_id(point, feature, position),
                "layer": point.layer,
                "sublayer": point.sublayer,
                "hook_name": point.hook_name,
                "feature": "error" if feature == ERROR else feature,
                "position": position,
                "score": float(e if position is None else e[position])
                if feature == ERROR
                else float(f[(*at, feature)]),
            }
            if position is not None and tokens is not None:
                node["token"] = tokens[position]
            if position is not None and activations is not None and feature != ERROR:
                node["activation"] = float(activations[i][position, feature])
            if feature != ERROR:
                if (i, feature) not in logit_tokens:  # once per feature, not per position
                    logit_tokens[i, feature] = direct_logit_tokens(model, point, feature)
                node["promoted"], node["suppressed"] = logit_tokens[i, feature]
                url = point.sae.feature_url(feature)
                if url is not None:
                    node["url"] = url
            nodes.append(node)
    rows = []
    for (p, q), table in edges.items():
        for i, (up_pos, u) in enumerate(node_keys(kept[p])):
            for j, (down_pos, d) in enumerate(node_keys(kept[q])):
                if up_pos is not None and down_pos is not None and up_pos > down_pos:
                    continue  # a later position cannot reach an earlier one: weight 0
                rows.append(
                    {
                        "source": node_id(points[p], u, up_pos),
                        "target": node_id(points[q], d, down_pos),
                        "weight": float(table[i, j]),
                    }
                )
    out = {"nodes": nodes, "edges": rows}
    if embedding_edges is not None:
        out["embedding_edges"] = [
            {
                "source": f"embedding@{i}",
                "target": node_id(points[0], d, down_pos),
                "weight": float(embedding_edges[i, j]),
            }
            for j, (down_pos, d) in enumerate(node_keys(kept[0]))
            for i in range(embedding_edges.shape[0])
            if down_pos is None or i <= down_pos
        ]
    return out


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

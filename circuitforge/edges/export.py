"""A discrete circuit as text (the original's form), JSON rows, and a picture."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from PIL import Image, ImageDraw

from circuitforge.edges.discrete import _node_order
from circuitforge.edges.graph import ComponentEdge, ComponentNode, EdgeGraph


def circuit_text(graph: EdgeGraph, keep: list[bool]) -> str:
    """One line per destination: `9.6[q] <- input, 0.10, 3.0` (sources in layer order)."""
    into: dict[tuple, list[ComponentEdge]] = defaultdict(list)
    for edge, kept in zip(graph.edges, keep):
        if kept:
            into[(edge.dest, edge.channel, edge.position)].append(edge)
    lines = []
    for dest, channel, position in sorted(
        into, key=lambda k: (_node_order(k[0]), k[1] or "", -1 if k[2] is None else k[2])
    ):
        name = dest.name + (f"[{channel}]" if channel else "")
        name += f"@{position}" if position is not None else ""
        sources = sorted({e.src for e in into[(dest, channel, position)]}, key=_node_order)
        lines.append(f"{name} <- " + ", ".join(s.name for s in sources))
    return "\n".join(lines) + ("\n" if lines else "")


def edge_rows(graph: EdgeGraph, scores, coefficients, keep) -> list[dict]:
    return [
        {
            "src": e.src.name,
            "dest": e.dest.name,
            "channel": e.channel,
            **({"position": e.position} if e.position is not None else {}),
            "score": float(s),
            "coefficient": float(c),
            "kept": bool(k),
        }
        for e, s, c, k in zip(graph.edges, scores.tolist(), coefficients.tolist(), keep.tolist())
    ]


COLOURS = {"q": (52, 101, 164), "k": (78, 154, 6), "v": (204, 0, 0), None: (85, 87, 83)}


def circuit_picture(graph: EdgeGraph, keep: list[bool], coefficients: list[float]) -> np.ndarray:
    """RGB [H, W, 3] uint8: layers bottom to top, heads left to right, MLP at the right; edge
    colour = the input it enters (Q blue, K green, V red, MLP/logits grey)."""
    n_layers, n_heads = graph.shape.n_layers, graph.shape.n_heads
    cell, margin = 56, 40
    width = margin * 2 + cell * (n_heads + 1)
    height = margin * 2 + cell * 2 * (n_layers + 1)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def xy(node: ComponentNode) -> tuple[int, int]:
        if node.kind == "input":
            return width // 2, height - margin
        if node.kind == "logits":
            return width // 2, margin
        row = 2 * node.layer + (1 if node.kind == "mlp" else 0) + 1
        column = node.head if node.kind == "head" else n_heads
        return margin + cell * column + cell // 2, height - margin - row * cell

    used: set[ComponentNode] = set()
    for edge, kept, c in zip(graph.edges, keep, coefficients):
        if kept:
            used |= {edge.src, edge.dest}
            line_width = 1 + round(2 * min(max(c, 0.0), 1.0))  # thicker = larger coefficient
            draw.line([xy(edge.src), xy(edge.dest)], fill=COLOURS[edge.channel], width=line_width)
    for node in graph.sources + (ComponentNode("logits"),):
        x, y = xy(node)
        fill = (252, 233, 79) if node in used else (238, 238, 236)
        draw.ellipse([x - 14, y - 10, x + 14, y + 10], fill=fill, outline=(46, 52, 54))
        draw.text((x - 12, y - 6), node.name[:6], fill="black")
    return np.asarray(image)

"""Scored edges for other tools: the EAP-IG / MIB circuit JSON (EAP-IG's `Graph.from_json`
reads it) and auto-circuit's `PruneScores` (`auto_circuit_prune_scores`).

    {"cfg": {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"},
     "nodes": {"input" | "a{L}.h{H}" | "m{L}" | "logits": {"in_graph": bool}},
     "edges": {"a0.h1->m3" | "input->a1.h0<q>" | ...: {"score": float, "in_graph": bool}}}

Names follow EAP-IG (`src/eap/graph.py`): our head `L.H` is `aL.hH`, our channel `[q]` is `<q>`.
EAP-IG's graph has every edge of the model with Q/K/V split and MLPs as nodes, so only such
graphs (no per-position edges) are written; an edge EAP-IG has and we do not is absent from
`edges` (EAP-IG keeps its default for it: not in the graph, score 0).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from circuitforge.atomic_files import write_text_atomically
from circuitforge.edges.graph import ComponentNode, EdgeGraph
from circuitforge.model import hooks


def mib_node_name(node: ComponentNode) -> str:
    if node.kind == "head":
        return f"a{node.layer}.h{node.head}"
    return node.name  # input, m{L}, logits


def mib_edge_name(src: ComponentNode, dest: ComponentNode, channel: str | None) -> str:
    tail = f"<{channel}>" if channel else ""
    return f"{mib_node_name(src)}->{mib_node_name(dest)}{tail}"


def our_node_name(mib: str) -> str:
    found = re.match(r"^a(\d+)\.h(\d+)$", mib)
    return f"{found.group(1)}.{found.group(2)}" if found else mib


def mib_circuit(graph: EdgeGraph, d_model: int, scores: list[float], keep: list[bool]) -> dict:
    """The MIB circuit of a scored (and kept) edge set of `graph`."""
    if graph.n_positions is not None or not graph.split_qkv or not graph.include_mlp:
        raise ValueError(
            "the MIB / EAP-IG circuit format has one edge per Q/K/V input and MLP nodes at "
            "every position; this graph is per-position, or has Q/K/V or MLPs merged"
        )
    if len(scores) != len(graph.edges) or len(keep) != len(graph.edges):
        raise ValueError(f"{len(scores)} scores / {len(keep)} keep flags for {len(graph.edges)}")
    edges = {
        mib_edge_name(e.src, e.dest, e.channel): {"score": float(s), "in_graph": bool(k)}
        for e, s, k in zip(graph.edges, scores, keep)
    }
    in_graph = {"logits"}
    for e, k in zip(graph.edges, keep):
        if k:
            in_graph |= {mib_node_name(e.src), mib_node_name(e.dest)}
    names = ["input"] + [
        name
        for layer in range(graph.shape.n_layers)
        for name in [f"a{layer}.h{h}" for h in range(graph.shape.n_heads)] + [f"m{layer}"]
    ]
    nodes = {name: {"in_graph": name in in_graph} for name in [*names, "logits"]}
    cfg = {
        "n_layers": graph.shape.n_layers,
        "n_heads": graph.shape.n_heads,
        "parallel_attn_mlp": False,
        "d_model": d_model,
    }
    return {"cfg": cfg, "nodes": nodes, "edges": edges}


def write_mib_circuit(path: str | Path, circuit: dict) -> Path:
    return write_text_atomically(path, json.dumps(circuit) + "\n")


def read_mib_circuit(path: str | Path) -> dict[str, dict]:
    """Our edge name (`0.1->m3`, `input->1.0[q]`) -> {score, in_graph}, from a MIB circuit."""
    data = json.loads(Path(path).read_text())
    missing = [k for k in ("cfg", "nodes", "edges") if k not in data]
    if missing:
        raise ValueError(f"{path} is not a MIB circuit: no {missing}")
    out = {}
    for name, info in data["edges"].items():
        found = re.match(r"^(.+)->(.+?)(?:<([qkv])>)?$", name)
        if found is None:
            raise ValueError(f"{path}: edge name {name!r} is not src->dest[<q|k|v>]")
        src, dest, channel = found.groups()
        ours = f"{our_node_name(src)}->{our_node_name(dest)}" + (f"[{channel}]" if channel else "")
        out[ours] = {"score": info["score"], "in_graph": info["in_graph"]}
    return out


# --- auto-circuit -------------------------------------------------------------------------
def auto_circuit_prune_scores(graph: EdgeGraph, scores: list[float]) -> dict[str, torch.Tensor]:
    """auto-circuit's `PruneScores` of a factorized, Q/K/V-separate TransformerLens graph.

    auto-circuit (`model_utils/transformer_lens_utils.py`, `utils/graph_utils.py`) numbers the
    sources Resid Start, then per block its heads and its MLP (`src_idx`), and keys scores by
    the destination's module: `blocks.{L}.hook_{q,k,v}_input` -> [n_heads, n_sources before
    layer L], `blocks.{L}.hook_mlp_in` -> [n_sources up to layer L's heads],
    `blocks.{last}.hook_resid_post` -> [all sources]. Edge (src, dest) sits at
    `[dest head, src_idx]`.
    """
    if graph.n_positions is not None or not graph.split_qkv or not graph.include_mlp:
        raise ValueError("auto-circuit's factorized graph has Q/K/V and MLPs at every position")
    n_layers, n_heads = graph.shape.n_layers, graph.shape.n_heads
    src_idx = {"input": 0}
    for layer in range(n_layers):
        for head in range(n_heads):
            src_idx[f"{layer}.{head}"] = len(src_idx)
        src_idx[f"m{layer}"] = len(src_idx)
    out: dict[str, torch.Tensor] = {}
    for layer in range(n_layers):
        before = 1 + layer * (n_heads + 1)
        for letter in "qkv":
            out[hooks.qkv_input(layer, letter)] = torch.zeros(n_heads, before)
        out[hooks.mlp_in(layer)] = torch.zeros(before + n_heads)
    out[hooks.resid_post(n_layers - 1)] = torch.zeros(len(src_idx))
    for edge, score in zip(graph.edges, scores):
        i = src_idx[edge.src.name]
        if edge.dest.kind == "head":
            out[hooks.qkv_input(edge.dest.layer, str(edge.channel))][edge.dest.head, i] = score
        elif edge.dest.kind == "mlp":
            out[hooks.mlp_in(edge.dest.layer)][i] = score
        else:
            out[hooks.resid_post(n_layers - 1)][i] = score
    return out

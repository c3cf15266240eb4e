"""The circuit for other tools: the EAP-IG / MIB JSON (every edge EAP-IG's graph has, named as
EAP-IG names it, with our scores and kept flags; read back to the same circuit), and
auto-circuit's PruneScores (each edge at the index auto-circuit's own rules give it)."""

from __future__ import annotations

import json

import pytest
import torch

from circuitforge.edges.circuit_formats import (
    auto_circuit_prune_scores,
    mib_circuit,
    read_mib_circuit,
)
from circuitforge.edges.graph import EdgeGraph, GraphShape
from lightning_modules.trainer_access import log_dir
from tests.test_edge_runs import ablation_args, fit, result


def eap_ig_edge_names(n_layers: int, n_heads: int) -> set[str]:
    """EAP-IG's edges of a sequential (not parallel attn/MLP) model, enumerated by hand."""
    names = set()
    upstream = ["input"]
    for layer in range(n_layers):
        heads = [f"a{layer}.h{h}" for h in range(n_heads)]
        for head in heads:
            names |= {f"{src}->{head}<{c}>" for src in upstream for c in "qkv"}
        upstream = upstream + heads
        names |= {f"{src}->m{layer}" for src in upstream}
        upstream = upstream + [f"m{layer}"]
    return names | {f"{src}->logits" for src in upstream}


@pytest.mark.parametrize("n_layers,n_heads", [(1, 1), (2, 3), (4, 4)])
def test_the_edges_are_eap_igs_edges(n_layers, n_heads):
    graph = EdgeGraph(GraphShape(n_layers, n_heads))
    n = len(graph.edges)
    circuit = mib_circuit(graph, 16, [0.0] * n, [False] * n)
    assert set(circuit["edges"]) == eap_ig_edge_names(n_layers, n_heads)
    assert circuit["cfg"] == {
        "n_layers": n_layers,
        "n_heads": n_heads,
        "parallel_attn_mlp": False,
        "d_model": 16,
    }


def test_a_per_position_graph_is_refused():
    graph = EdgeGraph(GraphShape(1, 1), n_positions=3)
    with pytest.raises(ValueError, match="per-position"):
        mib_circuit(graph, 8, [0.0] * len(graph.edges), [False] * len(graph.edges))


def test_a_run_writes_its_circuit_in_the_mib_format(tmp_path):
    cli = fit(tmp_path, "configs/edges/tracr_hist.yaml", *ablation_args("zero"))
    folder = log_dir(cli.trainer) / "results"
    ours = result(cli)
    read = read_mib_circuit(folder / "circuit_mib.json")
    expected = {
        f"{e['src']}->{e['dest']}" + (f"[{e['channel']}]" if e["channel"] else ""): e
        for e in ours["edges"]
    }
    assert set(read) == set(expected)
    for name, edge in expected.items():
        assert read[name] == {"score": edge["score"], "in_graph": edge["kept"]}
    nodes = json.loads((folder / "circuit_mib.json").read_text())["nodes"]
    kept_nodes = {"a0.h0" if n == "0.0" else n for n in ours["nodes"]} | {"logits"}
    assert {n for n, v in nodes.items() if v["in_graph"]} == kept_nodes
    prune_scores = torch.load(folder / "circuit_prune_scores.pt", weights_only=True)
    assert sorted(prune_scores) == sorted(auto_circuit_prune_scores(cli.model.graph, [0.0] * 8))


def auto_circuit_edges(n_layers: int, n_heads: int) -> dict[str, tuple[str, tuple]]:
    """auto-circuit's factorized edges (separate Q/K/V, sequential attn/MLP) by its rules:
    sources Resid Start (layer 0), A{b}.{h} (layer 2b+1), MLP b (2b+2), numbered in that order;
    destinations A{b}.{h}.{Q,K,V} (2b+1), MLP b (2b+2), Resid End (2L+1); an edge wherever the
    source's layer is below the destination's, at [head, src_idx] of the destination's module.
    Returned as our edge name -> (module, index)."""
    sources = [("input", 0)]
    for b in range(n_layers):
        sources += [(f"{b}.{h}", 2 * b + 1) for h in range(n_heads)] + [(f"m{b}", 2 * b + 2)]
    dests = []
    for b in range(n_layers):
        for h in range(n_heads):
            for c in "qkv":
                dests.append((f"{b}.{h}[{c}]", f"blocks.{b}.hook_{c}_input", (h,), 2 * b + 1))
        dests.append((f"m{b}", f"blocks.{b}.hook_mlp_in", (), 2 * b + 2))
    dests.append(("logits", f"blocks.{n_layers - 1}.hook_resid_post", (), 2 * n_layers + 1))
    return {
        f"{src}->{dest}": (module, (*head, i))
        for dest, module, head, dest_layer in dests
        for i, (src, src_layer) in enumerate(sources)
        if src_layer < dest_layer
    }


@pytest.mark.parametrize("n_layers,n_heads", [(1, 1), (2, 3), (3, 2)])
def test_prune_scores_put_each_edge_where_auto_circuit_reads_it(n_layers, n_heads):
    graph = EdgeGraph(GraphShape(n_layers, n_heads))
    scores = [float(i + 1) for i in range(len(graph.edges))]
    prune_scores = auto_circuit_prune_scores(graph, scores)
    expected = auto_circuit_edges(n_layers, n_heads)
    assert {e.name for e in graph.edges} == set(expected)
    for edge, score in zip(graph.edges, scores):
        module, index = expected[edge.name]
        assert prune_scores[module][index] == score
    total = sum(int(t.numel()) for t in prune_scores.values())
    assert total == len(expected)  # no slot auto-circuit has is left without an edge of ours
    assert all(t.dtype == torch.float32 for t in prune_scores.values())

"""The circuit in the EAP-IG / MIB JSON format: every edge EAP-IG's graph has, named as EAP-IG
names it, with our scores and kept flags; read back to the same circuit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitforge.edges.graph import EdgeGraph, GraphShape
from circuitforge.edges.mib_export import mib_circuit, read_mib_circuit
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
    folder = Path(cli.trainer.log_dir) / "results"
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

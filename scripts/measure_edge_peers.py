"""Each peer method on a real model's edge graph: wall time, cost in forward+backward
equivalents, and MIB's CPR/CMD of its scores (the same evaluation as the runs' comparison).

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/measure_edge_peers.py \
        --config configs/edges/gemma3_ioi.yaml --pairs 16 --exact-edges 256

The model, task, template, seed and batch size are the config's; the pairs are the first
`--pairs` of its validation split. Exact patching over every edge is `--exact-edges all`; a
number instead measures its rate on that many edges (spread over the graph) and extrapolates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.edges.faithfulness import faithfulness_of, mib_scores  # noqa: E402
from circuitforge.edges.graph import EdgeGraph, GraphShape  # noqa: E402
from circuitforge.edges.masked_forward import MaskedForward  # noqa: E402
from circuitforge.edges.peers.exact import exact_effects  # noqa: E402
from circuitforge.edges.peers.registry import PeerSettings, score_edges  # noqa: E402
from circuitforge.edges.prepared import PreparedBatch  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from datamodules.prompt_pairs import PromptPairDataModule  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/edges/gemma3_ioi.yaml")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--methods", nargs="*", default=["random", "eap", "eap_ig_inputs", "eap_ig_activations"]
    )
    parser.add_argument("--exact-edges", default="256")
    parser.add_argument("--edges-per-pass", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = yaml.safe_load((ROOT / args.config).read_text())
    model_args = config["model"]["init_args"]
    data_args = dict(config["data"]["init_args"])
    t0 = time.perf_counter()
    model = load_frozen_model(FrozenModelSpec(**model_args["model"]))
    graph = EdgeGraph(
        GraphShape.of(model), model_args.get("split_qkv", True), model_args.get("include_mlp", True)
    )
    forward = MaskedForward(model, graph)
    data = PromptPairDataModule(**data_args)
    data.bind_model(model)
    batches, n = [], 0
    for batch in data.validation_batches():
        if n >= args.pairs:
            break
        batches.append(batch)
        n += len(batch)
    ablation, objective = model_args.get("ablation", "interchange"), model_args["objective"]
    prepared = [PreparedBatch(forward, b, ablation) for b in batches]
    setup = time.perf_counter() - t0
    print(f"{len(graph.edges)} edges, {n} pairs in {len(prepared)} batches; set-up {setup:.0f} s")
    settings = PeerSettings(objective, ablation, edges_per_pass=args.edges_per_pass)
    evaluate = faithfulness_of(forward, prepared, "kl")
    rows = []
    for method in args.methods:
        peer = score_edges(method, forward, prepared, settings)
        t1 = time.perf_counter()
        curves = mib_scores(graph, peer.scores, evaluate)
        row = {
            "method": method,
            "cpr": curves.cpr,
            "cmd": curves.cmd,
            **peer.cost_json(),
            "sweep_seconds": time.perf_counter() - t1,
            "faithfulness_signed": [p["faithfulness"] for p in curves.signed.points],
            "faithfulness_absolute": [p["faithfulness"] for p in curves.absolute.points],
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if "faithfulness" not in k}), flush=True)
    if args.exact_edges != "0":
        every = (
            list(range(len(graph.edges)))
            if args.exact_edges == "all"
            else list(range(0, len(graph.edges), max(1, len(graph.edges) // int(args.exact_edges))))
        )
        t1 = time.perf_counter()
        effects = exact_effects(forward, prepared, objective, every, args.edges_per_pass)
        seconds = time.perf_counter() - t1
        row = {
            "method": "exact",
            "edges_scored": len(every),
            "seconds": seconds,
            "seconds_per_edge": seconds / len(every),
            "seconds_all_edges_extrapolated": seconds / len(every) * len(graph.edges),
            "forwards": len(prepared) * (1 + len(every)),
            "largest_effect": float(effects.abs().max()),
        }
        if len(every) == len(graph.edges):
            curves = mib_scores(graph, effects, evaluate)
            row |= {"cpr": curves.cpr, "cmd": curves.cmd}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out is not None:
        args.out.write_text(
            json.dumps({"pairs": n, "edges": len(graph.edges), "rows": rows}) + "\n"
        )


if __name__ == "__main__":
    main()

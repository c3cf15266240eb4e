"""The Gemma-3-270M IOI circuit at a fraction of edges from a peer's ranking, and its heads
against the activation-patching sweep's (issue 27, item 5).

    # the circuit: top int(f * 10,342) edges by signed score, pruned to input->logits paths
    .venv/bin/python scripts/gemma3_circuit_heads.py --fraction 0.05 \
        --scores runs/issue27_gemma_table/ioi_seed0_eap_ig_inputs.pt \
        --out runs/issue27_gemma_table/circuit_ioi_seed0_5pct/circuit.json
    # its heads (and other seeds' or fractions') against a patching run's z sweep
    .venv/bin/python scripts/gemma3_circuit_heads.py --fraction 0.05 0.02 0.01 \
        --scores runs/issue27_gemma_table/ioi_seed*_eap_ig_inputs.pt \
        --patching runs/analysis_gemma3_ioi_patching/version_0/results/activation_patching.json

The graph is `configs/edges/gemma3_ioi.yaml`'s (18 layers x 4 heads, split Q/K/V, MLPs,
post-attention norm), rebuilt without loading the model. The ranking and pruning are MIB's
(`circuitforge.edges.faithfulness.ranked_top`, `connected`); the comparison is the patching
module's (`circuitforge.analysis.compare`: a head matters when its z patch moves the
normalised logit difference by >= the threshold, either direction).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.analysis.compare import compare_heads, head_effects  # noqa: E402
from circuitforge.edges.faithfulness import connected, mib_edge_count, ranked_top  # noqa: E402
from circuitforge.edges.graph import EdgeGraph, GraphShape  # noqa: E402

GEMMA3_270M = GraphShape(n_layers=18, n_heads=4, attn_only=False, post_attention_norm=True)


def circuit(graph: EdgeGraph, scores: torch.Tensor, fraction: float) -> dict:
    keep = connected(
        graph, ranked_top(scores, mib_edge_count(fraction, len(graph.edges)), "signed")
    )
    edges = [e for e, k in zip(graph.edges, keep.tolist()) if k]
    nodes = sorted({e.src.name for e in edges} | {e.dest.name for e in edges})
    return {"fraction": fraction, "edges": [e.name for e in edges], "nodes": nodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scores", nargs="+", type=Path, required=True)
    parser.add_argument("--fraction", nargs="+", type=float, default=[0.05])
    parser.add_argument("--out", type=Path, default=None, help="circuit.json of the first")
    parser.add_argument("--patching", type=Path, default=None)
    parser.add_argument("--threshold", type=float, default=0.05)
    args = parser.parse_args()
    graph = EdgeGraph(GEMMA3_270M, True, True)
    if len(graph.edges) != 10_342:
        raise ValueError(f"expected Gemma-3-270M's 10,342 edges, got {len(graph.edges)}")
    effects = None
    if args.patching is not None:
        sweeps = json.loads(args.patching.read_text())["sweeps"]
        grid = {d: np.array(s["z"]["exact"]) for d, s in sweeps.items() if "z" in s}
        effects = head_effects(grid.get("denoising"), grid.get("noising"))
    for path in args.scores:
        scores = torch.load(path)
        for fraction in args.fraction:
            found = circuit(graph, scores, fraction)
            heads = {n for n in found["nodes"] if n[0].isdigit()}
            row = {
                "scores": str(path),
                "fraction": fraction,
                "edges": len(found["edges"]),
                "heads": sorted(heads, key=lambda h: tuple(map(int, h.split(".")))),
            }
            if effects is not None:
                compared = compare_heads(effects, heads, args.threshold, 20)
                row |= {
                    k: compared[k]
                    for k in (
                        "precision",
                        "recall",
                        "heads_that_matter",
                        "matter_but_not_in_circuit",
                    )
                }
            print(json.dumps(row), flush=True)
            if args.out is not None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(found) + "\n")
                args.out = None


if __name__ == "__main__":
    main()

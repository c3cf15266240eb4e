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

Our learned coefficients join the same protocol with `--learned <recipe> ... --steps N [--bf16]`
(recipes: `scripts/edge_recipes.py`): `EdgeCoefficientsModule` with the config's settings plus
the recipe's, trained `N` steps on the seed's training pairs (a `PromptPairDataModule` of the
same pairs, shuffled per epoch), its `importance()` (what `CircuitExport` ranks) judged on the
same test split; `method` is "learned interpolation coefficients (<recipe>)". Cost per step:
the ablation run and the masked forward (2 forwards) and one backward, plus the full model's
clean forward once per batch and the warm start's passes, if any.

    nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE MALLOC_ARENA_MAX=2 .venv/bin/python \
        scripts/gemma3_edge_table.py --pairs 16 --test-pairs 16 --seeds 0 --tasks ioi \
        --learned ugs --steps 40 --bf16 --out docs/measurements/issue27_gemma_table.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.batches import pair_batch  # noqa: E402
from circuitforge.edges.faithfulness import faithfulness_of, mib_scores  # noqa: E402
from circuitforge.edges.graph import EdgeGraph, GraphShape  # noqa: E402
from circuitforge.edges.masked_forward import MaskedForward  # noqa: E402
from circuitforge.edges.peers.registry import PeerSettings, check_methods, score_edges  # noqa: E402
from circuitforge.edges.peers.result import PeerScores  # noqa: E402
from circuitforge.edges.prepared import PreparedBatch  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.tasks.demo_tasks import one_template  # noqa: E402
from circuitforge.tasks.greater_than_digits import decade_pairs  # noqa: E402
from circuitforge.tasks.ioi import WANG_TEMPLATES, ioi_pairs  # noqa: E402
from circuitforge.tasks.prompt_pairs import tokenize_pairs  # noqa: E402
from datamodules import PromptPairDataModule  # noqa: E402
from lightning_modules import EdgeCoefficientsModule, FrozenModelStrategy  # noqa: E402
from scripts.edge_recipes import StepTimer, recipe_settings  # noqa: E402

TASKS = {
    "ioi": lambda n, seed: ioi_pairs(n, seed, one_template(WANG_TEMPLATES, 0)),
    "greater_than_decade": decade_pairs,
}
TEMPLATES = {"ioi": 0}  # PromptPairDataModule's `template` that draws TASKS' pairs
TEST_SEED_OFFSET = 1000
GEMMA_CONFIG = ROOT / "configs/edges/gemma3_ioi.yaml"
LEARNED = "learned interpolation coefficients"  # as CircuitExport names ours
# (forwards, backwards) per batch of a warm start's scores, as the peers count them
WARM_START_PASSES = {"eap": (2.0, 1.0), "eap_ig": (6.0, 5.0)}


class StepLog(StepTimer):
    """StepTimer that prints each step's time (to size a run from its first steps)."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        print(f"step {self.steps}: {self.seconds:.0f} s in all", flush=True)


def learned_method(recipe: str, steps: int) -> str:
    return f"{LEARNED} ({recipe}, {steps} steps)"


def learned_scores(
    config: Path,
    recipe: str,
    steps: int,
    task: str,
    seed: int,
    n_pairs: int,
    batch_size: int,
    bf16: bool,
) -> tuple[EdgeCoefficientsModule, PeerScores]:
    """Train the recipe's coefficients `steps` steps on the seed's training pairs of `task`
    (the config's model and graph settings, the recipe's on top); their MIB importance as a
    peer's scores, with the passes counted as the peers count theirs."""
    init = yaml.safe_load(config.read_text())["model"]["init_args"]
    init.update(recipe_settings(recipe, steps), bf16=bf16)
    init["model"] = FrozenModelSpec(**init["model"])
    L.seed_everything(seed, verbose=False)
    module = EdgeCoefficientsModule(**init)
    data = PromptPairDataModule(
        task=task, template=TEMPLATES.get(task), n_train=n_pairs, n_validation=1,
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    timer = StepLog()
    trainer = L.Trainer(
        max_steps=steps, max_epochs=-1, accelerator="cpu", strategy=FrozenModelStrategy(),
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[timer],
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    if timer.steps != steps:  # stopped (Lightning ends fit on SIGTERM): no row
        raise RuntimeError(f"{recipe} stopped after {timer.steps} of {steps} steps")
    expected = tokenize_pairs(module.frozen_model, TASKS[task](n_pairs, seed))
    if not torch.equal(data.train_pairs.clean, expected.clean):  # type: ignore[union-attr]
        raise ValueError(f"the datamodule's {task} pairs of seed {seed} are not the table's")
    batches = -(-n_pairs // batch_size)
    forwards, backwards = 2.0 * timer.steps + batches, float(timer.steps)
    warm = getattr(module, "warm_start_seconds", 0.0)
    if module.warm_start is not None:
        f, b = WARM_START_PASSES[module.warm_start["scores"]]
        n = min(batches, module.warm_start.get("n_batches") or batches)
        forwards, backwards = forwards + f * n, backwards + b * n
    scores = module.importance().float()
    result = PeerScores(
        learned_method(recipe, steps), scores, forwards, backwards, timer.seconds + warm
    )
    return module, result


def prepared_split(model, forward, pairs, batch_size: int) -> list[PreparedBatch]:
    tensors = tokenize_pairs(model, pairs)
    rows = list(range(len(pairs)))
    return [
        PreparedBatch(forward, pair_batch(tensors, rows[i : i + batch_size]), "interchange")
        for i in range(0, len(rows), batch_size)
    ]


def measure(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    default = ["random", "eap", "eap_ig_inputs"] if not args.learned else []
    methods = check_methods(default if args.methods is None else args.methods)
    for task in args.tasks:
        if task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    learned = {learned_method(r, args.steps): r for r in args.learned}
    for recipe in args.learned:
        recipe_settings(recipe, args.steps)  # an unknown recipe or steps < 1: refused now
    done = set()
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            done.add((row["task"], row["seed"], row["method"]))
    spec = yaml.safe_load(args.config.read_text())["model"]["init_args"]["model"]
    model = load_frozen_model(FrozenModelSpec(**spec))
    graph = EdgeGraph(GraphShape.of(model), True, True)
    forward = MaskedForward(model, graph)
    for seed in args.seeds:  # seed by seed, so a cut-short run has whole seeds of both tasks
        for task in args.tasks:
            todo = [m for m in (*methods, *learned) if (task, seed, m) not in done]
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
                extra = {}
                if method in learned:
                    recipe = learned[method]
                    module, peer = learned_scores(
                        args.config, recipe, args.steps, task, seed, args.pairs,
                        args.batch_size, args.bf16,
                    )  # fmt: skip
                    if module.graph.edges != graph.edges:
                        raise ValueError(f"{args.config}'s graph is not the table's")
                    extra = {"recipe": recipe, "steps": args.steps, "bf16": args.bf16,
                             "warm_start": module.warm_start}  # fmt: skip
                    del module
                else:
                    settings = PeerSettings("logit_diff", "interchange", seed=seed)
                    peer = score_edges(method, forward, scored, settings)
                args.scores_dir.mkdir(parents=True, exist_ok=True)
                name = method.replace(" ", "_").replace("(", "").replace(")", "")
                name = name.replace(",", "")
                torch.save(peer.scores, args.scores_dir / f"{task}_seed{seed}_{name}.pt")
                t1 = time.perf_counter()
                curves = mib_scores(graph, peer.scores, evaluate)
                row = {
                    "task": task,
                    "seed": seed,
                    "method": method,
                    **extra,
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

    def cost(row: dict) -> str:
        if "steps" in row:  # a learned recipe: its steps on the batches, in total
            return f"{row['fb_equivalents']:.1f} in all ({row['steps']} steps)"
        return f"{row['fb_equivalents'] / row['batches']:.1f} per batch x {row['batches']}"

    print("| task | method | seeds | CPR | CMD | scoring s | MIB sweep s | cost (fwd+bwd eq.) |")
    print("|---|---|---|---|---|---|---|---|")
    for (task, method), group in groups.items():
        print(
            f"| {task} | {method} | {len(group)} | {ms([r['cpr'] for r in group])} | "
            f"{ms([r['cmd'] for r in group])} | {ms([r['seconds'] for r in group], 0)} | "
            f"{ms([r['sweep_seconds'] for r in group], 0)} | {cost(group[0])} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--methods", nargs="*", default=None,
        help="peers (default random eap eap_ig_inputs; none with --learned)",
    )  # fmt: skip
    parser.add_argument("--learned", nargs="*", default=[], help="recipes of edge_recipes.py")
    parser.add_argument("--steps", type=int, default=40, help="steps of each learned recipe")
    parser.add_argument("--bf16", action="store_true", help="learned recipes in bf16 autocast")
    parser.add_argument("--config", type=Path, default=GEMMA_CONFIG, help="model + graph")
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

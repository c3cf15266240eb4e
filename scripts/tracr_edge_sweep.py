"""Edge discovery on every tracr fixture: program x ablation x seed -> exact / missing / extra /
ROC AUC, for one recipe (a set of config overrides). Writes one JSON line per run and a table.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/tracr_edge_sweep.py --recipe shipped \
        --out runs/tracr_sweep

Recipes are named sets of `--model.init_args.*` overrides (RECIPES below) on
`configs/edges/tracr_hist.yaml`, whose paths are pointed at each fixture. A run that raises is
recorded with its error. Resumable: runs already in `<out>/<recipe>.jsonl` are skipped.
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

from train import main  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "tracr"
BASE = ROOT / "configs" / "edges" / "tracr_hist.yaml"
PREFIX_ONLY = ["--model.init_args.keep_metric=auto", "--model.init_args.prune_kept=false"]
RECIPES: dict[str, list[str]] = {
    # the shipped configs/edges/tracr_*.yaml: sigmoid, MSE objective, the fewest top edges within
    # MSE 1e-5 of the read logits, then pruned edge by edge while within it
    "shipped": [],
    # the default before this sweep: the fewest top edges within KL 1e-5, no pruning
    "prefix_only_kl": PREFIX_ONLY,
    "sparsity_0.1": [*PREFIX_ONLY, "--model.init_args.sparsity_weight=0.1"],
    "keep_kl_1e-3": [*PREFIX_ONLY, "--model.init_args.keep_kl=0.001"],
    "hard_concrete_threshold": [
        "--model.init_args.parameterisation=hard_concrete",
        "--model.init_args.keep_kl=null",
        "--model.init_args.prune_kept=false",
    ],
    "prune_kept_kl": ["--model.init_args.keep_metric=auto"],  # pruning, but judged by the KL
}


def config_for(program: str, out: Path) -> Path:
    config = yaml.safe_load(BASE.read_text())
    path = str(FIXTURES / program)
    config["model"]["init_args"]["model"]["path"] = path
    config["data"]["init_args"]["path"] = path
    config["trainer"]["logger"]["init_args"]["name"] = f"tracr_{program}"
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"].endswith("CircuitExport"):
            callback["init_args"]["ground_truth"] = str(FIXTURES / program / "circuit.json")
            callback["init_args"]["compare"] = []
    target = out / "configs" / f"{program}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config))
    return target


def run_one(program: str, ablation: str, seed: int, recipe: str, out: Path) -> dict:
    args = [
        "fit",
        "--config",
        str(config_for(program, out)),
        f"--trainer.logger.init_args.save_dir={out / 'runs' / recipe}",
        f"--model.init_args.ablation={ablation}",
        f"--data.init_args.seed={seed}",
        f"--seed_everything={seed}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *RECIPES[recipe],
    ]
    t0 = time.perf_counter()
    row = {"program": program, "ablation": ablation, "seed": seed, "recipe": recipe}
    try:
        cli = main(args)
        result = json.loads((Path(cli.trainer.log_dir) / "results" / "circuit.json").read_text())
        match = result["ground_truth_match"]
        row |= {
            "exact": match["exact"],
            "n_true": match["n_true"],
            "missing": match["missing"],
            "extra": match["extra"],
            "roc_auc": match["roc_auc"],
            "n_kept": result["metrics"]["n_edges"],
            "n_edges": result["n_edges_total"],
            "failure": result.get("failure"),
        }
    except Exception as error:  # a run that fails is a row of the table, not the end of it
        row |= {"error": f"{type(error).__name__}: {error}"[:300]}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| program | ablation | seed | exact | missing | extra | ROC AUC | kept/true |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['program']} | {r['ablation']} | {r['seed']} | error: "
                         f"{r['error'][:80]} | | | | |")  # fmt: skip
            continue
        auc = "-" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
        lines.append(
            f"| {r['program']} | {r['ablation']} | {r['seed']} | {'yes' if r['exact'] else 'no'}"
            f" | {len(r['missing'])} | {len(r['extra'])} | {auc} | {r['n_kept']}/{r['n_true']} |"
        )
    exact = sum(bool(r.get("exact")) for r in rows)
    lines.append(f"\n{exact} of {len(rows)} runs exact")
    return "\n".join(lines)


def main_sweep() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="shipped")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "tracr_sweep")
    parser.add_argument("--programs", nargs="*", default=None)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--ablations", nargs="*", default=["zero", "interchange"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    programs = args.programs or sorted(
        p.name for p in FIXTURES.iterdir() if (p / "circuit.json").is_file()
    )
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{args.recipe}.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["program"], r["ablation"], r["seed"]) for r in rows}
    for program in programs:
        for ablation in args.ablations:
            for seed in args.seeds:
                if (program, ablation, seed) in done:
                    continue
                row = run_one(program, ablation, seed, args.recipe, args.out)
                rows.append(row)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    (args.out / f"{args.recipe}.md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main_sweep()

"""Learned edge recipes side by side on one edge config: MIB's CPR / CMD, steps, wall time.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/edge_recipes.py \
        --config configs/edges/demo_ioi.yaml \
        --recipes today edge_pruning ugs ours --steps 200 --out runs/edge_recipes

Each recipe is a set of `--model.init_args.*` overrides (RECIPES below; `{steps}` is the run's
step budget). The run is one epoch of `steps` batches (n_train = steps x batch size), so that
CircuitExport evaluates once, at the end; training time is the sum of the step times
(the warm start's scoring counted separately). One JSON line per run in `<out>/recipes.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightning as L
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train import main  # noqa: E402

M = "--model.init_args."
RECIPES: dict[str, list[str]] = {
    # the shipped recipe before issue 27: sigmoid, relu sparsity to density 0, lr 0.1
    "today": [
        f"{M}parameterisation=sigmoid",
        f"{M}sparsity=null",
        f"{M}warm_start=null",
        f"{M}budgets=null",
        f"{M}sparsity_warmup_steps={{ramp}}",
    ],
    # Edge Pruning: hard-concrete gates, Lagrangian on a sparsity target (lambdas by gradient
    # ascent, lr 0.8 both), target ramped over 5/6 of the steps (2,500 of 3,000), KL objective
    "edge_pruning": [
        f"{M}parameterisation=hard_concrete",
        f"{M}lr=0.8",
        f"{M}objective=kl",
        f"{M}sparsity={{kind: lagrangian, target: 0.95, start: 0.0, "
        f"warmup_steps: {{ramp}}, lambda_lr: 0.8}}",
        f"{M}warm_start=null",
        f"{M}budgets=null",
    ],
    # UGS: sampled keep probabilities, a constant penalty on their sum (relu with target 1)
    "ugs": [
        f"{M}parameterisation=ugs",
        f"{M}lr=0.1",
        f"{M}sparsity={{kind: relu, target: 1.0, start: 1.0, warmup_steps: 0, weight: 1.0}}",
        f"{M}warm_start=null",
        f"{M}budgets=null",
    ],
    # UGS-style, started from EAP-IG-inputs' signed scores ranked over all edges (MIB's warm
    # start takes |score| per layer; the signed global order is the one EAP-IG's CPR ranks)
    "ugs_ig": [
        f"{M}parameterisation=ugs",
        f"{M}lr=0.1",
        f"{M}sparsity={{kind: relu, target: 1.0, start: 1.0, warmup_steps: 0, weight: 1.0}}",
        f"{M}warm_start={{scores: eap_ig, sparsity: 0.5, mode: signed, per_layer: false}}",
        f"{M}budgets=null",
    ],
    # ours: warm start from EAP, hard-concrete, Lagrangian, nested budgets down MIB's fractions
    "ours": [
        f"{M}parameterisation=hard_concrete",
        f"{M}lr=0.1",
        f"{M}sparsity={{kind: lagrangian, target: 0.0, lambda_lr: 0.8}}",
        f"{M}warm_start={{scores: eap, sparsity: 0.5, n_batches: 4}}",
        f"{M}budgets={{steps_per_budget: {{per_budget}}}}",
    ],
    # the same, warm-started from EAP-IG-inputs (5 steps: five backwards per batch, not one)
    "ours_ig": [
        f"{M}parameterisation=hard_concrete",
        f"{M}lr=0.1",
        f"{M}sparsity={{kind: lagrangian, target: 0.0, lambda_lr: 0.8}}",
        f"{M}warm_start={{scores: eap_ig, sparsity: 0.5, n_batches: 4}}",
        f"{M}budgets={{steps_per_budget: {{per_budget}}}}",
    ],
    # nested budgets without a warm start (all edges start on, as today's recipe)
    "ours_cold": [
        f"{M}parameterisation=hard_concrete",
        f"{M}lr=0.1",
        f"{M}sparsity={{kind: lagrangian, target: 0.0, lambda_lr: 0.8}}",
        f"{M}warm_start=null",
        f"{M}budgets={{steps_per_budget: {{per_budget}}}}",
    ],
    # ours without nested budgets: warm start + Lagrangian to 95% sparsity
    "ours_flat": [
        f"{M}parameterisation=hard_concrete",
        f"{M}lr=0.1",
        f"{M}sparsity={{kind: lagrangian, target: 0.95, start: 0.9, "
        f"warmup_steps: {{ramp}}, lambda_lr: 0.8}}",
        f"{M}warm_start={{scores: eap, sparsity: 0.9, n_batches: 4}}",
        f"{M}budgets=null",
    ],
    # ours with UGS sampling instead of hard concrete
    "ours_ugs": [
        f"{M}parameterisation=ugs",
        f"{M}lr=0.1",
        f"{M}sparsity={{kind: lagrangian, target: 0.0, lambda_lr: 0.8}}",
        f"{M}warm_start={{scores: eap, sparsity: 0.5, n_batches: 4}}",
        f"{M}budgets={{steps_per_budget: {{per_budget}}}}",
    ],
}


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.seconds, self.steps, self._t = 0.0, 0, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._t
        self.steps += 1


def config_copy(config: str, out: Path, compare: list[str]) -> str:
    """The config with CircuitExport comparing only `compare` (the peers cost the same for
    every recipe; their own table is issue 27's peers measurement)."""
    data = yaml.safe_load(Path(config).read_text())
    for callback in data["trainer"]["callbacks"]:
        if callback["class_path"].endswith("CircuitExport"):
            init = callback.setdefault("init_args", {})
            init.pop("compare_eap", None)
            init["compare"] = compare
    target = out / "configs" / Path(config).name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(data))
    return str(target)


def recipe_overrides(recipe: str, steps: int) -> list[str]:
    """The recipe's `--model.init_args.*` overrides for a run of `steps` steps (the ramp is 5/6
    of them, each nested budget a tenth)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    fill = {"{ramp}": str(max(1, steps * 5 // 6)), "{per_budget}": str(max(1, steps // 10))}
    overrides = []
    for arg in RECIPES[recipe]:
        for key, value in fill.items():
            arg = arg.replace(key, value)
        overrides.append(arg.replace("{{", "{").replace("}}", "}"))
    return overrides


def recipe_settings(recipe: str, steps: int) -> dict:
    """The same overrides as `EdgeCoefficientsModule` init arguments (values read as YAML, as
    the command line reads them)."""
    settings = {}
    for arg in recipe_overrides(recipe, steps):
        key, value = arg.removeprefix(M).split("=", 1)
        settings[key] = yaml.safe_load(value)
    return settings


def run(config: str, recipe: str, steps: int, batch: int, out: Path, extra: list[str]) -> dict:
    overrides = recipe_overrides(recipe, steps)
    args = ["fit", "--config", config, f"--trainer.logger.init_args.save_dir={out / recipe}",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--trainer.max_epochs=1", f"--data.init_args.n_train={steps * batch}",
            f"--data.init_args.batch_size={batch}", "--trainer.callbacks+=__main__.StepTimer",
            *overrides, *extra]  # fmt: skip
    t0 = time.perf_counter()
    cli = main(args)
    timer = next(c for c in cli.trainer.callbacks if isinstance(c, StepTimer))  # type: ignore[attr-defined]
    wall = time.perf_counter() - t0
    log_dir = cli.trainer.log_dir
    assert log_dir is not None
    result = json.loads((Path(log_dir) / "results" / "circuit.json").read_text())
    m = result["metrics"]
    return {
        "recipe": recipe,
        "config": config,
        "steps": timer.steps,
        "train_seconds": round(timer.seconds, 1),
        "warm_start_seconds": round(getattr(cli.model, "warm_start_seconds", 0.0), 1),
        "wall_seconds": round(wall, 1),
        "cpr": m.get("cpr"),
        "cmd": m.get("cmd"),
        "n_edges": m["n_edges"],
        "logit_diff_recovered": m.get("logit_diff_recovered"),
        "comparison": {
            c.get("method"): {"cpr": c.get("cpr"), "cmd": c.get("cmd")}
            for c in result.get("comparison", [])
        },
        "overrides": overrides + extra,
    }


def main_recipes() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", default="configs/edges/demo_ioi.yaml")
    parser.add_argument("--recipes", nargs="*", default=["today", "edge_pruning", "ugs", "ours"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "edge_recipes")
    parser.add_argument("--extra", nargs="*", default=[])
    parser.add_argument("--compare", nargs="*", default=["eap"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    config = config_copy(args.config, args.out, args.compare)
    for recipe in args.recipes:
        row = run(config, recipe, args.steps, args.batch, args.out, args.extra)
        with (args.out / "recipes.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "overrides"}), flush=True)


if __name__ == "__main__":
    main_recipes()

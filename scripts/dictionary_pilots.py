"""Issue 25's pilot table: train recipe variants of one dictionary on cached activations, evaluate
each on the same held-out rows, one JSON line per variant.

    OMP_NUM_THREADS=1 python scripts/dictionary_pilots.py \
        --config configs/dictionaries/gemma3_pilot_l8.yaml --out runs/pilot25/pilots.jsonl
    python scripts/dictionary_pilots.py --table runs/pilot25/pilots.jsonl   # the markdown table

Each variant is `train.py fit` of the config with a few overrides (`VARIANTS`), run in this
process one after another (the model is loaded once); a variant already in `--out` is skipped,
so an interrupted sweep continues. After training, the module's own held-out evaluation
(`DictionaryTraining.heldout_metrics`: our `evaluate_sae` on `data.heldout_rows` held-out rows,
fp32 forwards) and the dead fraction over the last epoch (features silent for the whole last
pass over the cache, from the module's dead-feature counters).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOOK = "blocks.8.hook_resid_post"
EVAL_BATCH = 2  # held-out rows a forward: each holds [rows, 128, 262144] fp32 logits twice


def dictionary(**fields) -> str:
    spec = {"hook": HOOK, "width": 4096, "k": 64, **fields}
    return (
        "--model.init_args.dictionaries=[{" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}]"
    )


VARIANTS: dict[str, list[str]] = {
    "reference": [],  # the long run's recipe: TopK k 64, AuxK, b_dec at the data mean
    "no_centre": ["--model.init_args.centre_decoder_bias=false"],
    "batchtopk": [dictionary(architecture="batchtopk")],
    "k32": [dictionary(k=32)],
    "k128": [dictionary(k=128)],
    "no_auxk": [dictionary(aux_coefficient=0.0)],
    "lr_4e-3": ["--model.init_args.lr=0.004"],
}


def run_variant(config: Path, name: str, overrides: list[str], eval_rows: int | None) -> dict:
    from circuitforge.demo_world.sae_training import evaluate_sae
    from circuitforge.dictionaries.export import inference_copy
    from train import main

    args = [
        "fit",
        "--config",
        str(config),
        f"--trainer.logger.init_args.version={name}",
        "--model.init_args.eval_every_n_steps=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *overrides,
    ]
    start = time.perf_counter()
    cli = main(args)
    trained = time.perf_counter() - start
    module, data = cli.model, cli.datamodule
    spec = module.specs[0]
    epochs = cli.trainer.current_epoch
    last_epoch_tokens = int(module.tokens_seen) // max(epochs, 1)
    since = module.since_fired(spec)
    rows = data.heldout if eval_rows is None else data.heldout[:eval_rows]  # a prefix
    start = time.perf_counter()
    # what `module.heldout_metrics()` computes, 2 rows a forward (its 8 rows of Gemma's
    # 262k-token logits, fp32, took 9 GB: OOM-killed on the shared machine)
    sae = inference_copy(module.saes[spec.key()], module.scale(spec)).eval()
    metrics = evaluate_sae(module.frozen_model, sae, rows, spec.hook, batch_size=EVAL_BATCH)
    evaluated = time.perf_counter() - start
    return {
        "variant": name,
        "overrides": overrides,
        "hook": spec.hook,
        "architecture": spec.architecture,
        "width": spec.width,
        "k": spec.k,
        "aux_coefficient": spec.aux_coefficient,
        "centre": module.centre,
        "lr": module.lr,
        "steps": int(cli.trainer.global_step),
        "epochs": epochs,
        "training_tokens": int(module.tokens_seen),
        "dead_last_epoch": float((since >= last_epoch_tokens).double().mean()),
        "last_epoch_tokens": last_epoch_tokens,
        "heldout": metrics,
        "heldout_rows": int(rows.shape[0]),
        "train_seconds": round(trained, 1),
        "eval_seconds": round(evaluated, 1),
    }


def reevaluate(config: Path, name: str, eval_rows: int) -> dict:
    """The held-out metrics of variant `name`'s exported dictionary (sae-lens's loader, input
    scale folded in) on the first `eval_rows` held-out rows: what `heldout_metrics` computes."""
    import yaml
    from sae_lens import SAE

    from circuitforge.demo_world.sae_training import evaluate_sae
    from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
    from datamodules.activation_tokens import ActivationTokensDataModule

    settings = yaml.safe_load(config.read_text())
    logger = settings["trainer"]["logger"]["init_args"]
    folder = Path(logger["save_dir"]) / logger["name"] / name / "dictionaries" / "layer_8"
    model = load_frozen_model(FrozenModelSpec(**settings["model"]["init_args"]["model"]))
    data_args = dict(settings["data"]["init_args"])
    data_args.pop("cache")
    data = ActivationTokensDataModule(**data_args)
    data.bind_tokenizer(model)
    assert data.heldout is not None
    start = time.perf_counter()
    sae = SAE.load_from_disk(str(folder))
    metrics = evaluate_sae(model, sae, data.heldout[:eval_rows], HOOK, batch_size=EVAL_BATCH)
    return {
        "variant": name,
        "reevaluated": str(folder),
        "heldout": metrics,
        "heldout_rows": eval_rows,
        "eval_seconds": round(time.perf_counter() - start, 1),
    }


def table(path: Path, eval_rows: int | None = None) -> str:
    """One row per trained variant; the held-out columns from its evaluation on `eval_rows`
    rows (its own, or a re-evaluation of its export), or its own when `eval_rows` is None."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    trained = [r for r in records if "reevaluated" not in r]
    evals = {
        r["variant"]: r for r in records if eval_rows is None or r["heldout_rows"] == eval_rows
    }
    lines = [
        "| variant | EV (held-out) | L0 | dead, last epoch | loss change (nats) | "
        "held-out tokens | training tokens | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in trained:
        e = evals.get(r["variant"])
        h = e["heldout"] if e is not None else None
        held = (
            f"{h['explained_variance']:.3f} | {h['l0']:.1f} | {100 * r['dead_last_epoch']:.1f}% | "
            f"{h['loss_change']:+.3f} | {h['n_tokens']:,}"
            if h is not None
            else f"- | - | {100 * r['dead_last_epoch']:.1f}% | - | -"
        )
        lines.append(
            f"| {r['variant']} | {held} | {r['training_tokens']:,} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--config", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--eval-rows", type=int, default=None, help="held-out rows (a prefix)")
    p.add_argument("--reevaluate", help="evaluate this trained variant's export again")
    p.add_argument("--table", type=Path, help="print the markdown table of this JSON-lines file")
    args = p.parse_args()
    if args.table is not None:
        print(table(args.table, args.eval_rows))
        return
    if args.config is None or args.out is None:
        p.error("--config and --out are needed to run the pilots")
    if args.reevaluate is not None:
        record = reevaluate(args.config, args.reevaluate, args.eval_rows)
        with args.out.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        return
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    done = set()
    if args.out.exists():
        lines = args.out.read_text().splitlines()
        done = {json.loads(line)["variant"] for line in lines if line}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        if name in done:
            print(f"{name}: already in {args.out}", flush=True)
            continue
        record = run_variant(args.config, name, VARIANTS[name], args.eval_rows)
        with args.out.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

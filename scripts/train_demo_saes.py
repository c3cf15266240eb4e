"""Train a TopK SAE on the residual stream of each layer of a local model, and evaluate them.

    python scripts/train_demo_saes.py --model assets/demo/model --corpus assets/demo/corpus.jsonl \
        --out runs/demo_saes

Documents are the corpus lines (.txt) or records (.jsonl, the demo world's, whose `split` field
says which are held out). In a .txt corpus the last 10% (never trained on) evaluate the SAEs.
Training rows are PACKED: `BOS doc BOS doc ...` cut into rows of `--context`
tokens, each starting with BOS, so no compute goes to padding (the demo documents are ~15
tokens). Evaluation rows are one document each (BOS + text, right-padded), the way the pipelines
prompt the model. BOS and pad tokens are neither trained on nor scored.

Writes `OUT/layer_{L}/` and `OUT/resid_pre_0/` (layer -1, the stream before block 0), in
sae-lens format (`SAE.load_from_disk`), `OUT/runner_cfg.json` (sae-lens)
and `OUT/sae_report.json`: per layer our metrics (`evaluate_sae`) plus d_sae, k,
training_tokens and `seconds`, the wall time of the one training run shared by all layers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

from circuitforge.demo_world.sae_training import (  # noqa: E402
    EMBEDDING,
    evaluate_sae,
    pack_documents,
    pad_documents,
    resid_hook_name,
    tokenize_documents,
    train_residual_saes,
)
from circuitforge.model.local_dir import load_model_dir  # noqa: E402

METRICS = ["explained_variance", "l0", "dead_fraction", "loss_clean", "loss_spliced"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="local model directory")
    parser.add_argument(
        "--corpus", type=Path, required=True, help=".txt (a document a line) or .jsonl"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--layers", type=int, nargs="+", default=None, help="default: all, and -1 (resid_pre 0)"
    )
    parser.add_argument("--d-sae", type=int, default=1024)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--training-tokens", type=int, default=2_000_000)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size-tokens", type=int, default=4096)
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    return parser.parse_args(argv)


def markdown_table(report: dict) -> str:
    lines = [
        "| layer | explained var | L0 | dead | loss clean | loss spliced | Δ loss | tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for layer, r in report["layers"].items():
        lines.append(
            f"| {layer} | {r['explained_variance']:.3f} | {r['l0']:.1f} | "
            f"{r['dead_fraction']:.1%} | {r['loss_clean']:.4f} | {r['loss_spliced']:.4f} | "
            f"{r['loss_change']:+.4f} | {r['n_tokens']} |"
        )
    return "\n".join(lines)


def read_documents(path: Path, eval_fraction: float) -> tuple[list[str], list[str]]:
    """Training and evaluation documents. A .jsonl corpus (the demo world's) says which are
    held out by its `split` field; a .txt corpus holds out its last `eval_fraction`."""
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        train = [r["text"] for r in records if r.get("split") == "train"]
        held = [r["text"] for r in records if r.get("split") == "heldout"]
        if not train or not held:
            raise SystemExit(f"{path} needs documents with split 'train' and split 'heldout'")
        return train, held
    documents = [line for line in path.read_text().splitlines() if line.strip()]
    n_eval = max(1, round(len(documents) * eval_fraction))
    if n_eval >= len(documents):
        raise SystemExit(f"{path} has too few documents ({len(documents)}) to hold out")
    return documents[:-n_eval], documents[-n_eval:]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model_dir(args.model)
    model.eval()
    tokenizer = model.tokenizer
    if tokenizer is None or tokenizer.bos_token_id is None or tokenizer.pad_token_id is None:
        raise SystemExit(f"{args.model} needs a tokenizer with BOS and pad tokens")
    all_layers = [EMBEDDING, *range(model.cfg.n_layers)]
    layers = args.layers if args.layers is not None else all_layers
    bad = [layer for layer in layers if layer not in all_layers]
    if bad:
        raise SystemExit(f"layers {bad} not in [-1, {model.cfg.n_layers}) (-1: resid_pre 0)")

    train_docs, eval_docs = read_documents(args.corpus, args.eval_fraction)
    bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
    train_rows = pack_documents(tokenize_documents(model, train_docs), args.context, bos)
    eval_rows = pad_documents(tokenize_documents(model, eval_docs), args.context, bos, pad)
    if len(train_rows) == 0:
        raise SystemExit(f"the training documents fill no row of {args.context} tokens")

    start = time.perf_counter()
    paths = train_residual_saes(
        model,
        train_rows,
        layers,
        args.out,
        d_sae=args.d_sae,
        k=args.k,
        training_tokens=args.training_tokens,
        seed=args.seed,
        lr=args.lr,
        batch_size_tokens=args.batch_size_tokens,
    )
    seconds = time.perf_counter() - start

    from sae_lens import SAE

    report: dict = {
        "model": str(args.model),
        "corpus": str(args.corpus),
        "context": args.context,
        "seed": args.seed,
        "lr": args.lr,
        "batch_size_tokens": args.batch_size_tokens,
        "threads": args.threads,
        "train_documents": len(train_docs),
        "train_rows": len(train_rows),
        "eval_documents": len(eval_docs),
        "train_seconds_all_layers": round(seconds, 2),
        "layers": {},
    }
    for layer, path in paths.items():
        sae = SAE.load_from_disk(path)
        eval_start = time.perf_counter()
        metrics = evaluate_sae(model, sae, eval_rows, resid_hook_name(layer))
        report["layers"][str(layer)] = {
            **metrics,
            "d_sae": args.d_sae,
            "k": args.k,
            "training_tokens": args.training_tokens,
            "seconds": round(seconds, 2),
            "eval_seconds": round(time.perf_counter() - eval_start, 2),
            "path": str(path),
        }
    (args.out / "sae_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"trained {len(layers)} SAEs in {seconds:.1f} s ({args.threads} threads)")
    print(markdown_table(report))
    return report


if __name__ == "__main__":
    main()

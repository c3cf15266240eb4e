"""Benchmark of exact activation patching, batched, against a per-cell loop and attribution.

    OMP_NUM_THREADS=1 python bench/analysis.py [--quick] [--n 16] [--chunks 1,8,32,0]
        [--kinds z,q,k,v] [--direction denoising] [--repeats 3] [--big-n 2] [--big-pos 16]
        [--big-d-model 192] [--big-layers 12] [--big-heads 12] [--big-vocab 8192]
        [--big-kinds z,q,k,v] [--big-repeats 2] [--profile]

A full activation-patching sweep of every head (sweep kinds z, q, k, v: one cell per layer x
head; resid_pre, attn_out, mlp_out: one per layer x position, add them to --kinds), exact, on
one batch of prompt pairs (--direction: denoising runs the corrupted prompts and copies in the
clean run's activation). One thread, fp32 CPU; every path timed interleaved in one process, best
and median of --repeats rounds after a warm-up round on the first layer's cells. A path's time
for a kind includes its run of the source prompts. Paths:
  loop         the obvious reference in plain TransformerLens: one `run_with_cache` of the
               source prompts (names_filter: the sweep's hooks), then one
               `model.run_with_hooks(target, fwd_hooks=[(hook, fn)])` per cell (full logits),
               logit difference at the read position by `edges.objectives.logit_difference`;
               z at `blocks.L.attn.hook_z`, q/k/v at `blocks.L.attn.hook_{q,k,v}` (head axis;
               `cfg.ungroup_grouped_query_attention` on for the sweep, then restored)
  C=c          `analysis.patching.patched_metric(..., cells_per_forward=c)`: up to c cells of
               one layer share one forward (the batch repeated per cell), which starts at that
               layer from the target run's cached resid_pre; C=all: a layer's cells in one
               forward (a C above a layer's cell count is C=all: demo layers have 4 heads)
  attribution  `analysis.patching.attribution_estimates`: one forward/backward for the sweep
               (first-order estimates, not exact: their Pearson r with the exact change is shown)
Ratios are loop time / path time (> 1: faster than the loop). Every C must agree with the loop
to 1e-3 (max |difference| over cells and pairs, printed); the benchmark fails otherwise.
Models: the demo model (assets/demo/model, grouped-query attention) on --n demo IOI pairs of one
template; then (not with --quick) a random model of GPT-2 small's shape scaled down (--big-*:
LayerNorm, learned positions, gelu_new, d_head = d_model / heads, d_mlp = 4 d_model) on --big-n
random token pairs (the corrupt prompt changes 3 positions; answer and wrong answer random, read
at the last position).
Peak RSS is ru_maxrss. --profile cProfiles one batched sweep (the largest C) per model.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402

from circuitforge.analysis.cells import Cell, sweep_cells  # noqa: E402
from circuitforge.analysis.patching import (  # noqa: E402
    attribution_estimates,
    patched_metric,
    target_and_source,
)
from circuitforge.batches import PairBatch  # noqa: E402
from circuitforge.edges.objectives import logit_difference  # noqa: E402
from circuitforge.model import hooks  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from datamodules.prompt_pairs import PromptPairDataModule  # noqa: E402

TOLERANCE = 1e-3
LOOP_HOOKS = {
    "resid_pre": hooks.resid_pre,
    "attn_out": hooks.attn_out,
    "mlp_out": hooks.mlp_out,
    "z": hooks.attn_z,
    "q": hooks.attn_q,
    "k": hooks.attn_k,
    "v": hooks.attn_v,
}


def gpt2_like(d_model: int, n_layers: int, n_heads: int, d_vocab: int) -> dict:
    """GPT-2 small's architecture (LayerNorm, learned positions, gelu_new, d_mlp 4x), scaled."""
    return dict(
        d_model=d_model, d_head=d_model // n_heads, n_heads=n_heads, d_mlp=4 * d_model,
        n_layers=n_layers, n_ctx=64, d_vocab=d_vocab, act_fn="gelu_new", normalization_type="LN",
        positional_embedding_type="standard", original_architecture="GPT2LMHeadModel",
        init_weights=True,
    )  # fmt: skip


def random_batch(n: int, pos: int, d_vocab: int) -> PairBatch:
    """Random clean tokens; corrupt changes 3 positions; logit difference at the last one."""
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, d_vocab, (n, pos), generator=g)
    corrupt = clean.clone()
    for p in (pos // 4, pos // 2, 3 * pos // 4):
        corrupt[:, p] = (clean[:, p] + torch.randint(1, d_vocab, (n,), generator=g)) % d_vocab
    read = (torch.arange(pos) == pos - 1).expand(n, pos).clone()
    answer, wrong = torch.randint(0, d_vocab, (2, n), generator=g)
    return PairBatch(clean, corrupt, read, answer, wrong, torch.arange(n))


def demo_batch(model: HookedTransformer, n: int) -> PairBatch:
    dm = PromptPairDataModule(task="demo_ioi", n_train=n, batch_size=n, template=3)
    dm.bind_model(model)
    return next(iter(dm.test_dataloader()))


@torch.no_grad()
def loop_sweep(model: HookedTransformer, batch: PairBatch, cells: list[Cell], direction: str):
    """The reference: one plain TransformerLens run with one patching hook per cell."""
    target, source_tokens = target_and_source(batch, direction)
    cfg, saved = model.cfg, model.cfg.ungroup_grouped_query_attention
    cfg.ungroup_grouped_query_attention = saved or cells[0].kind in ("q", "k", "v")
    try:
        names = {c: LOOP_HOOKS[c.kind](c.layer) for c in cells}
        _, cache = model.run_with_cache(source_tokens, names_filter=sorted(set(names.values())))
        out = []
        for cell, hook in names.items():
            value = cache[hook][cell.index]

            def patch(act, hook, index=cell.index, value=value):
                act[index] = value
                return act

            logits = model.run_with_hooks(target, fwd_hooks=[(hook, patch)])
            out.append(logit_difference(logits, batch.read, batch.answer, batch.wrong_answer))
    finally:
        cfg.ungroup_grouped_query_attention = saved
    return torch.stack(out).float()


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def chunk_label(c: int) -> str:
    return "C=all" if c == 0 else f"C={c}"


def sweep_paths(model, batch, cells: list[Cell], direction: str, chunks: list[int]) -> dict:
    paths = {"loop": lambda: loop_sweep(model, batch, cells, direction)}
    for c in chunks:
        per = len(cells) if c == 0 else c
        paths[chunk_label(c)] = lambda per=per: patched_metric(model, batch, cells, direction, per)
    paths["attribution"] = lambda: attribution_estimates(model, batch, cells, direction)
    return paths


def describe(model: HookedTransformer) -> str:
    cfg = model.cfg
    kv = cfg.n_key_value_heads
    heads = f"{cfg.n_heads} heads" + (f" ({kv} kv heads)" if kv and kv != cfg.n_heads else "")
    return (
        f"{cfg.n_layers} layers x {heads}, d_model {cfg.d_model}, d_head {cfg.d_head}, "
        f"d_mlp {cfg.d_mlp}, d_vocab {cfg.d_vocab}"
    )


def bench(name, model, batch, kinds, args, repeats: int) -> dict:
    n, pos = batch.clean.shape
    print(
        f"\n[{name}] {describe(model)}; batch {n} pairs x {pos} tokens, {args.direction}; "
        f"best / median of {repeats} after a warm-up",
        flush=True,
    )
    sweeps = {kind: sweep_cells(model, kind, pos) for kind in kinds}
    per_kind = {kind: sweep_paths(model, batch, cells, args.direction, args.chunks)
                for kind, cells in sweeps.items()}  # fmt: skip
    first = {kind: [c for c in cells if c.layer == 0] for kind, cells in sweeps.items()}
    for cells in first.values():  # warm-up on the first layer's cells
        for run in sweep_paths(model, batch, cells, args.direction, args.chunks).values():
            run()
    names = list(per_kind[kinds[0]])
    times = {kind: {p: [] for p in names} for kind in kinds}
    outs: dict[str, dict] = {kind: {} for kind in kinds}
    for _ in range(repeats):
        for kind in kinds:
            for path, run in per_kind[kind].items():
                start = time.perf_counter()
                outs[kind][path] = run()
                times[kind][path].append(time.perf_counter() - start)
    # the whole sweep: every kind, summed per round
    times["sweep"] = {
        p: [sum(times[k][p][r] for k in kinds) for r in range(repeats)] for p in names
    }
    best = {k: {p: min(v) for p, v in t.items()} for k, t in times.items()}
    median = {k: {p: statistics.median(v) for p, v in t.items()} for k, t in times.items()}

    diffs, rs = {}, {}
    for kind in kinds:
        loop = outs[kind]["loop"]
        diffs[kind] = max(
            float((outs[kind][chunk_label(c)] - loop).abs().max()) for c in args.chunks
        )
        estimates, base = outs[kind]["attribution"]
        rs[kind] = pearson(estimates, loop - base)
    scale = float(outs[kinds[0]]["loop"].abs().max())

    counts = {kind: len(cells) for kind, cells in sweeps.items()}
    counts["sweep"] = sum(counts.values())
    rows = [*kinds, "sweep"]
    print(f"  seconds, best (median); cells per kind; {len(names)} paths")
    print(f"  {'kind':<9} {'cells':>5} " + " ".join(f"{p:>17}" for p in names))
    for kind in rows:
        cols = " ".join(f"{best[kind][p]:7.3f} ({median[kind][p]:7.3f})" for p in names)
        print(f"  {kind:<9} {counts[kind]:5d} {cols}")
    print("  loop / path, best (median)")
    print(f"  {'kind':<9} " + " ".join(f"{p:>15}" for p in names[1:]) + "   max|C - loop|  attr r")
    for kind in rows:
        b, m = best[kind], median[kind]
        cols = " ".join(f"{b['loop'] / b[p]:6.2f} ({m['loop'] / m[p]:6.2f})" for p in names[1:])
        check = f"   {diffs[kind]:13.2e}  {rs[kind]:6.3f}" if kind in diffs else ""
        print(f"  {kind:<9} {cols}{check}")
    worst = max(diffs.values())
    print(
        f"  batched vs loop: max |difference| {worst:.2e} over every C and kind "
        f"(|logit diff| up to {scale:.2f})",
        flush=True,
    )
    if not worst <= TOLERANCE:
        raise SystemExit(f"FAIL [{name}]: batched and loop differ by {worst:.3g} > {TOLERANCE}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [per_kind[k][names[-2]]() for k in kinds])
        print(f"  cProfile of one batched sweep ({names[-2]}, every kind) [{name}], by own time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return {
        "name": name,
        "cells": counts["sweep"],
        "best": best["sweep"],
        "median": median["sweep"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the demo model")
    parser.add_argument("--n", type=int, default=16, help="demo prompt pairs in the batch")
    parser.add_argument("--chunks", default="1,8,32,0", help="cells_per_forward (0: all cells)")
    parser.add_argument("--kinds", default="z,q,k,v", help="demo sweep kinds")
    parser.add_argument("--direction", default="denoising", choices=["denoising", "noising"])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (demo)")
    parser.add_argument("--big-n", type=int, default=2, help="prompt pairs (big)")
    parser.add_argument("--big-pos", type=int, default=16, help="tokens per prompt (big)")
    parser.add_argument("--big-d-model", type=int, default=192, help="d_head = d_model / heads")
    parser.add_argument("--big-layers", type=int, default=12)
    parser.add_argument("--big-heads", type=int, default=12)
    parser.add_argument("--big-vocab", type=int, default=8192)
    parser.add_argument("--big-kinds", default="z,q,k,v", help="big-model sweep kinds")
    parser.add_argument("--big-repeats", type=int, default=2, help="timed rounds (big)")
    parser.add_argument("--profile", action="store_true", help="cProfile one batched sweep")
    args = parser.parse_args()
    args.chunks = [int(c) for c in args.chunks.split(",")]
    torch.set_num_threads(1)
    started = time.perf_counter()

    demo = load_frozen_model(FrozenModelSpec(path=str(ROOT / "assets/demo/model")))
    results = [bench("demo", demo, demo_batch(demo, args.n), args.kinds.split(","), args,
                     args.repeats)]  # fmt: skip
    if not args.quick:
        cfg = gpt2_like(args.big_d_model, args.big_layers, args.big_heads, args.big_vocab)
        big = load_frozen_model(FrozenModelSpec(config=cfg))
        batch = random_batch(args.big_n, args.big_pos, args.big_vocab)
        results.append(
            bench("gpt2-shape", big, batch, args.big_kinds.split(","), args, args.big_repeats)
        )

    print(
        f"\nsummary: the whole sweep ({args.direction}, kinds summed), seconds best of N, "
        "one thread, fp32 CPU; ratio = loop / path (median in parentheses)"
    )
    for r in results:
        best, median = r["best"], r["median"]
        print(f"{r['name']:<11} {r['cells']:4d} cells  loop {best['loop']:8.3f} s")
        for path in list(best)[1:]:
            print(
                f"{'':<11} {'':>10}  {path:<11} {best[path]:8.3f} s  "
                f"x{best['loop'] / best[path]:6.2f}  (x{median['loop'] / median[path]:.2f})"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"peak RSS {peak:.2f} GiB, total {time.perf_counter() - started:.0f} s "
        f"(torch threads: {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()

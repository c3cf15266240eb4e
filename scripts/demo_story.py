"""What a demo neuron or SAE feature fires on in the demo corpus (to pick and check the demo).

    python scripts/demo_story.py --layer 3                   # topic-selective neurons
    python scripts/demo_story.py --layer 3 --neuron 42       # one neuron's top contexts
    python scripts/demo_story.py --sae-layer 0 --features 5 9  # SAE features (resid_post 0)

Reads `assets/demo/model` and the training documents of `assets/demo/corpus.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.data.top_contexts import top_contexts  # noqa: E402
from circuitforge.model.local_dir import load_model_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "assets/demo/model")
    parser.add_argument("--corpus", type=Path, default=ROOT / "assets/demo/corpus.jsonl")
    parser.add_argument("--saes", type=Path, default=ROOT / "assets/demo/saes")
    parser.add_argument("--layer", type=int, help="MLP layer of the neurons")
    parser.add_argument("--neuron", type=int)
    parser.add_argument("--sae-layer", type=int, help="the SAE reading blocks.{L}.hook_resid_post")
    parser.add_argument("--features", type=int, nargs="+", default=[])
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()

    torch.set_num_threads(2)
    model = load_model_dir(args.model).eval()
    records = [json.loads(line) for line in args.corpus.read_text().splitlines()]
    records = [r for r in records if r["split"] == "train"]
    texts, topics = [r["text"] for r in records], [r["topic"] for r in records]

    if args.sae_layer is not None:
        from sae_lens import SAE

        sae = SAE.load_from_disk(str(args.saes / f"layer_{args.sae_layer}"), device="cpu")
        hook = f"blocks.{args.sae_layer}.hook_resid_post"
        found = top_contexts(
            model, texts, hook, lambda a: sae.encode(a)[..., args.features], args.k
        )
        for feature, contexts in zip(args.features, found):
            show(f"SAE layer {args.sae_layer} feature {feature}", contexts, topics)
        return

    hook = f"blocks.{args.layer}.mlp.hook_post"
    if args.neuron is not None:
        found = top_contexts(model, texts, hook, lambda a: a[..., [args.neuron]], args.k)
        show(f"L{args.layer} neuron {args.neuron}", found[0], topics)
        return
    found = top_contexts(model, texts, hook, lambda a: a, k=20)
    scored = []
    for neuron, contexts in enumerate(found):
        topic, count = Counter(topics[c.document] for c in contexts).most_common(1)[0]
        tokens = Counter(c.token for c in contexts).most_common(1)[0][1]
        scored.append((count, -tokens, contexts[0].activation, neuron, topic))
    for count, tokens, top, neuron, topic in sorted(scored, reverse=True)[:20]:
        print(f"neuron {neuron}: {count}/20 top contexts in {topic}, "
              f"{-tokens}/20 the same token, max {top:.2f}")  # fmt: skip


def show(title: str, contexts, topics) -> None:
    print(f"## {title}")
    for c in contexts:
        print(f"  {c.activation:7.2f}  [{topics[c.document]}] ...{c.text[-90:]}")


if __name__ == "__main__":
    main()

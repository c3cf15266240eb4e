"""What a demo neuron or SAE feature fires on in the demo corpus (to pick and check the demo).

    python scripts/demo_story.py --layer 3                   # topic-selective neurons
    python scripts/demo_story.py --layer 3 --neuron 42       # one neuron's top contexts
    python scripts/demo_story.py --sae-layer 0 --features 5 9  # SAE features (resid_post 0)
    python scripts/demo_story.py --sae-layer -1 --features 5   # the SAE on resid_pre 0
    python scripts/demo_story.py --decode-words radius owl     # Patchscope of real words

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
from circuitforge.model import hooks  # noqa: E402
from circuitforge.model.local_dir import load_model_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "assets/demo/model")
    parser.add_argument("--corpus", type=Path, default=ROOT / "assets/demo/corpus.jsonl")
    parser.add_argument("--saes", type=Path, default=ROOT / "assets/demo/saes")
    parser.add_argument("--layer", type=int, help="MLP layer of the neurons")
    parser.add_argument("--neuron", type=int)
    parser.add_argument(
        "--sae-layer", type=int, help="the SAE reading blocks.{L}.hook_resid_post (-1: resid_pre 0)"
    )
    parser.add_argument("--features", type=int, nargs="+", default=[])
    parser.add_argument("--decode-words", nargs="+", default=[], help="Patchscope real words")
    parser.add_argument("--source-layer", type=int, default=0)
    parser.add_argument("--target-prompt", default="A detailed description of a x is that")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--documents", type=int, default=3000, help="first N training documents")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--show", type=int, default=20, help="candidate neurons listed")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = load_model_dir(args.model).eval()
    records = [json.loads(line) for line in args.corpus.read_text().splitlines()]
    records = [r for r in records if r["split"] == "train"][: args.documents]
    texts, topics = [r["text"] for r in records], [r["topic"] for r in records]

    if args.decode_words:
        for word in args.decode_words:
            text = decode_word(model, word, args.source_layer, args.target_prompt)
            print(f"{word!r} at resid_pre {args.source_layer} -> {text}")
        return

    if args.sae_layer is not None:
        from sae_lens import SAE

        from circuitforge.demo_world.sae_training import resid_hook_name, sae_folder

        sae = SAE.load_from_disk(str(args.saes / sae_folder(args.sae_layer)), device="cpu")
        hook = resid_hook_name(args.sae_layer)
        found = top_contexts(
            model, texts, hook, lambda a: sae.encode(a)[..., args.features], args.k
        )
        for feature, contexts in zip(args.features, found):
            show(f"SAE layer {args.sae_layer} feature {feature}", contexts, topics)
        return

    hook = hooks.mlp_post(args.layer)
    if args.neuron is not None:
        found = top_contexts(model, texts, hook, lambda a: a[..., [args.neuron]], args.k)
        show(f"L{args.layer} neuron {args.neuron}", found[0], topics)
        return
    found = top_contexts(model, texts, hook, lambda a: a, k=20)
    scored = []
    for neuron, contexts in enumerate(found):
        topic, count = Counter(topics[c.document] for c in contexts).most_common(1)[0]
        tokens = Counter(c.token for c in contexts).most_common(1)[0][1]
        words = " ".join(w for w, _ in Counter(c.token for c in contexts).most_common(4))
        scored.append((count, -tokens, contexts[0].activation, neuron, topic, words))
    for count, tokens, top, neuron, topic, words in sorted(scored, reverse=True)[: args.show]:
        print(f"neuron {neuron}: {count}/20 top contexts in {topic}, "
              f"{-tokens}/20 the same token, max {top:.2f}; tokens: {words}")  # fmt: skip


@torch.no_grad()
def decode_word(model, word: str, layer: int, prompt: str, n: int = 16) -> str:
    """Greedy Patchscope of a real word: its own residual at `layer` (last token of "<bos>
    word") written over the placeholder `x` of `prompt`, at every forward of the decoding."""
    _, cache = model.run_with_cache(model.to_tokens(word))
    vector = cache[hooks.resid_pre(layer)][0, -1]
    tokens = model.to_tokens(prompt)
    position = tokens[0].tolist().index(model.to_single_token("x"))

    def write(resid, hook):
        resid[:, position] = vector
        return resid

    start = tokens.shape[1]
    for _ in range(n):
        with model.hooks(fwd_hooks=[(hooks.resid_pre(layer), write)]):
            logits = model(tokens)
        tokens = torch.cat([tokens, logits[:, -1:].argmax(-1)], dim=1)
    return model.to_string(tokens[0, start:])


def show(title: str, contexts, topics) -> None:
    print(f"## {title}")
    for c in contexts:
        print(f"  {c.activation:7.2f}  [{topics[c.document]}] ...{c.text[-90:]}")


if __name__ == "__main__":
    main()

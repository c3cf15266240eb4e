"""Does a regenerated demo model reproduce the shipped one? Held-out loss within a tolerance.

    python scripts/check_demo_reproduction.py --regenerated runs/demo_world/model

Evaluates both model directories on the model card's documents (the validation and held-out
documents of the shipped corpus.jsonl) and prompts, and prints each topic's loss, IOI and
greater-than accuracy side by side. Exits 1 if any loss differs by more than `--tolerance`
(relative, default 2%).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.demo_world.corpus import Document  # noqa: E402
from circuitforge.demo_world.evaluation import evaluate_language_model  # noqa: E402
from circuitforge.model.local_dir import load_model_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipped", type=Path, default=ROOT / "assets" / "demo" / "model")
    parser.add_argument("--regenerated", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, default=ROOT / "assets" / "demo" / "corpus.jsonl")
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()

    records = [json.loads(line) for line in args.corpus.read_text().splitlines()]
    heldout = [Document(**r) for r in records if r["split"] != "train"]  # the model card's data
    results = {}
    for label, path in (("shipped", args.shipped), ("regenerated", args.regenerated)):
        model = load_model_dir(path)
        results[label] = evaluate_language_model(model, heldout, n_prompts=500, seed=1234)
    a, b = results["shipped"], results["regenerated"]
    worst = 0.0
    print("| loss | shipped | regenerated | relative difference |\n|---|---|---|---|")
    for split in ("validation_loss", "heldout_loss"):
        for topic, loss in a[split].items():
            rel = abs(b[split][topic] - loss) / loss
            worst = max(worst, rel)
            print(f"| {split} {topic} | {loss:.4f} | {b[split][topic]:.4f} | {rel:.2%} |")
    for task in ("ioi_heldout_names_and_templates", "greater_than_heldout_nouns"):
        print(f"| {task} accuracy | {a[task]['accuracy']:.3f} | {b[task]['accuracy']:.3f} | |")
    verdict = "within" if worst <= args.tolerance else "OUTSIDE"
    print(f"largest relative difference {worst:.2%}: {verdict} {args.tolerance:.0%}")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())

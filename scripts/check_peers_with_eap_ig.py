"""Score a tiny GPT-2-shaped model's edges with EAP-IG's own `attribute` and write the numbers
that `tests/test_edge_peers.py` pins (`tests/fixtures/eap_ig_peer_scores.json`).

EAP-IG is not on PyPI; point this at a checkout of https://github.com/hannamw/EAP-IG at the commit
MIB pins (7af394a5662de8b23ad6154716a0cd3993d447a3). Its `src/eap` needs only torch, einops,
transformer-lens, tqdm and numpy, all in our venv. Two things are changed on a copy, nothing
else: its score tensors are made on the CPU (it writes `device='cuda'`), and `tokenize_plus`
takes the token tensors given here (the model has no tokenizer; prompts of one length, no
padding, so its attention mask is all ones and `input_lengths` the length).

    git -C /work/.mirror/hannamw+EAP-IG/repo archive 7af394a src | tar -x -C /tmp/eapig
    OMP_NUM_THREADS=1 .venv/bin/python scripts/check_peers_with_eap_ig.py --eap-ig /tmp/eapig

The model is built by our loader from a config and a seed (`FrozenModelSpec(config=..., seed=)`:
the shared input of both sides); everything scored is EAP-IG's: `attribute(..., method=...)` for
EAP, EAP-IG-inputs and EAP-IG-activations (5 steps, MIB's default) and exact patching
(`get_scores_exact`), with MIB's metric (`logit_diff` as a loss: minus the logit difference,
summed over the batch here, so that the scores are per-pair means).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402

CONFIG = dict(
    n_layers=2,
    d_model=32,
    n_heads=2,
    d_head=8,
    d_mlp=64,
    n_ctx=16,
    d_vocab=50,
    act_fn="gelu_new",
    normalization_type="LN",
)
SEED = 3
STEPS = 5
OUT = ROOT / "tests" / "fixtures" / "eap_ig_peer_scores.json"


def data() -> list[dict]:
    """Two batches of three pairs, six tokens each; answer and wrong answer per pair."""
    generator = torch.Generator().manual_seed(SEED)
    batches = []
    for _ in range(2):
        clean = torch.randint(1, 49, (3, 6), generator=generator)
        corrupt = clean.clone()
        corrupt[:, 1] = torch.randint(1, 49, (3,), generator=generator)  # one token swapped
        corrupt[:, 3] = torch.randint(1, 49, (3,), generator=generator)
        labels = torch.randint(1, 49, (3, 2), generator=generator)
        batches.append(
            {"clean": clean.tolist(), "corrupt": corrupt.tolist(), "labels": labels.tolist()}
        )
    return batches


def eap_ig_on_cpu(checkout: Path):
    """A copy of EAP-IG's package with its score tensors on the CPU."""
    folder = Path(tempfile.mkdtemp()) / "eap"
    shutil.copytree(checkout / "src" / "eap", folder)
    for path in folder.glob("*.py"):
        path.write_text(path.read_text().replace("device='cuda'", "device='cpu'"))
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("eap.attribute"), importlib.import_module("eap.graph")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eap-ig", type=Path, required=True, help="EAP-IG checkout")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    attribute, graph_module = eap_ig_on_cpu(args.eap_ig)
    evaluate = importlib.import_module("eap.evaluate")

    def tokenize_plus(model, tokens):
        mask = torch.ones_like(tokens)
        return tokens, mask, mask.sum(1), tokens.shape[1]

    attribute.tokenize_plus = tokenize_plus
    evaluate.tokenize_plus = tokenize_plus

    model = load_frozen_model(FrozenModelSpec(config=CONFIG, seed=SEED))
    model.requires_grad_(True)  # EAP-IG differentiates through the weights (ours are frozen)
    model.cfg.use_attn_result = True
    model.cfg.use_split_qkv_input = True
    model.cfg.use_hook_mlp_in = True
    batches = data()
    loader = [
        (torch.tensor(b["clean"]), torch.tensor(b["corrupt"]), torch.tensor(b["labels"]))
        for b in batches
    ]

    def loss(logits, clean_logits, input_lengths, labels):  # MIB's logit_diff, loss=True
        rows = torch.arange(len(labels))
        last = logits[rows, input_lengths - 1]
        return -(last[rows, labels[:, 0]] - last[rows, labels[:, 1]])

    summed = lambda *a: loss(*a).sum()  # noqa: E731
    scores = {}
    for method in ("EAP", "EAP-IG-inputs", "EAP-IG-activations", "exact"):
        graph = graph_module.Graph.from_model(model)
        metric = loss if method == "exact" else summed  # exact: per-pair values, then a mean
        steps = STEPS if "IG" in method else None
        attribute.attribute(model, graph, loader, metric, method, ig_steps=steps, quiet=True)
        scores[method] = {name: float(edge.score) for name, edge in graph.edges.items()}
        print(method, len(scores[method]), "edges")
    out = {
        "eap_ig_commit": "7af394a5662de8b23ad6154716a0cd3993d447a3",
        "config": CONFIG,
        "seed": SEED,
        "ig_steps": STEPS,
        "batches": batches,
        "scores": scores,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

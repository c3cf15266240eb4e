"""Read our `circuit_prune_scores.pt` with auto-circuit itself and compare with `circuit_mib.json`.

auto-circuit needs transformer-lens 2.18, so this runs in its own venv (DESIGN.md) and imports
nothing of ours:

    python3 -m venv /work/venvs/autocircuit
    /work/venvs/autocircuit/bin/pip install torch==2.13.0
    /work/venvs/autocircuit/bin/pip install auto-circuit "transformer-lens==2.18.0" attrs \
        "pyarrow>=21,<22"
    /work/venvs/autocircuit/bin/python scripts/check_prune_scores_with_auto_circuit.py \
        runs/edges_demo_ioi/version_0/results

It builds a random TransformerLens model of the circuit's shape, makes it patchable with
auto-circuit (factorized, separate Q/K/V), checks that every mask auto-circuit makes has the
shape of our tensor for that module, and that `Edge.prune_score` of every auto-circuit edge is
the score `circuit_mib.json` gives the same edge.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.optim.adam

torch.optim.adam = sys.modules["torch.optim.adam"]  # auto-circuit under torch 2.13 (DESIGN.md)

import transformer_lens as tl  # noqa: E402
from auto_circuit.utils.graph_utils import patchable_model  # noqa: E402


def mib_name(node_name: str) -> str:
    """auto-circuit node name -> EAP-IG's (Resid Start, A1.0, A1.0.Q, MLP 2, Resid End)."""
    if node_name == "Resid Start":
        return "input"
    if node_name == "Resid End":
        return "logits"
    if node_name.startswith("MLP "):
        return f"m{node_name[4:]}"
    layer, head = node_name[1:].split(".")[:2]
    return f"a{layer}.h{head}"


def main() -> None:
    folder = Path(sys.argv[1])
    circuit = json.loads((folder / "circuit_mib.json").read_text())
    ours = torch.load(folder / "circuit_prune_scores.pt", weights_only=True)
    cfg = circuit["cfg"]
    model = tl.HookedTransformer(
        tl.HookedTransformerConfig(
            n_layers=cfg["n_layers"],
            n_heads=cfg["n_heads"],
            d_model=cfg["d_model"],
            d_head=max(1, cfg["d_model"] // cfg["n_heads"]),
            d_mlp=4 * cfg["d_model"],
            n_ctx=8,
            d_vocab=16,
            act_fn="relu",
        )
    )
    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    model.eval()
    patchable = patchable_model(
        model, factorized=True, separate_qkv=True, device=torch.device("cpu")
    )
    shapes_equal = all(
        tuple(patchable.patch_masks[m].shape) == tuple(t.shape) for m, t in ours.items()
    ) and set(patchable.patch_masks) == set(ours)
    wrong = 0
    for edge in patchable.edges:
        channel = edge.dest.name.split(".")[-1].lower() if edge.dest.name.count(".") == 2 else None
        name = f"{mib_name(edge.src.name)}->{mib_name(edge.dest.name)}"
        name += f"<{channel}>" if channel else ""
        expected = circuit["edges"][name]["score"]
        wrong += abs(float(edge.prune_score(ours)) - expected) > 1e-6
    print(
        f"{folder}: auto-circuit made {len(patchable.patch_masks)} masks (ours "
        f"{len(ours)}), shapes equal: {shapes_equal}; {len(patchable.edges)} auto-circuit edges "
        f"(ours {len(circuit['edges'])}), Edge.prune_score differs from our score on {wrong}"
    )


if __name__ == "__main__":
    main()

"""Turn tracr exports into local model directories with ground-truth circuits (no JAX).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/tracr/convert_to_model_dirs.py \
        --raw /tmp/tracr_raw --out tests/fixtures/tracr

`--raw`: what `compile_programs.py` wrote. Writes a model directory plus `tracr.json` and
`circuit.json` (`circuit_from_weights`, `ablation_effects`) per program, after checking the
model against tracr (argmax, output space and final residual within 1e-5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

from circuitforge.model import hooks  # noqa: E402
from circuitforge.model.local_dir import load_model_dir, save_model_dir  # noqa: E402

EDGE_TOL = 1e-6  # an edge exists iff max |write @ read| > EDGE_TOL
CHECK_TOL = 1e-5  # converted model vs tracr's raw activations
EFFECT_TOL = 1e-3  # an ablated edge matters if a logit at a non-BOS position moves by more
CHANNELS = ("q", "k", "v")


def build_model(meta: dict, weights: dict[str, np.ndarray]) -> HookedTransformer:
    """A HookedTransformer with exactly tracr's weights (no norms, zero biases)."""
    mc = meta["model_config"]
    labels = meta["residual_labels"]
    d_model, n_heads, d_head = len(labels), mc["num_heads"], mc["key_size"]
    cfg = HookedTransformerConfig(
        n_layers=mc["num_layers"],
        d_model=d_model,
        n_ctx=meta["n_positions"],
        d_head=d_head,
        n_heads=n_heads,
        d_mlp=mc["mlp_hidden_size"],
        d_vocab=len(meta["vocab"]),
        d_vocab_out=len(meta["output_labels"]),
        act_fn="relu",
        normalization_type=None,
        attention_dir="bidirectional",
        positional_embedding_type="standard",
        default_prepend_bos=False,
        model_name=f"tracr-{meta['program']}",
        seed=0,
    )
    model = HookedTransformer(cfg, move_to_device=False)
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    state["embed.W_E"] = t(weights["token_embed"])
    state["pos_embed.W_pos"] = t(weights["pos_embed"])
    for layer in range(cfg.n_layers):
        prefix = f"transformer.layer_{layer}"
        attn = f"{prefix}.attn"
        if f"{attn}.query.w" in weights:
            for name, key in (("Q", "query"), ("K", "key"), ("V", "value")):
                w = weights[f"{attn}.{key}.w"].reshape(d_model, n_heads, d_head)
                state[hooks.block(layer, f"attn.W_{name}")] = t(w.transpose(1, 0, 2))
                b = weights[f"{attn}.{key}.b"].reshape(n_heads, d_head)
                state[hooks.block(layer, f"attn.b_{name}")] = t(b)
            state[hooks.block(layer, "attn.W_O")] = t(
                weights[f"{attn}.linear.w"].reshape(n_heads, d_head, d_model)
            )
            state[hooks.block(layer, "attn.b_O")] = t(weights[f"{attn}.linear.b"])
        mlp = f"{prefix}.mlp"
        if f"{mlp}.linear_1.w" in weights:
            state[hooks.block(layer, "mlp.W_in")] = t(weights[f"{mlp}.linear_1.w"])
            state[hooks.block(layer, "mlp.b_in")] = t(weights[f"{mlp}.linear_1.b"])
            state[hooks.block(layer, "mlp.W_out")] = t(weights[f"{mlp}.linear_2.w"])
            state[hooks.block(layer, "mlp.b_out")] = t(weights[f"{mlp}.linear_2.b"])
    # Unembedding from the output SOp's residual labels (not np.eye: DESIGN.md).
    w_u = torch.zeros(d_model, cfg.d_vocab_out)
    for j, label in enumerate(meta["output_space_labels"]):
        w_u[labels.index(label), j] = 1.0
    state["unembed.W_U"] = w_u
    biases = {k: v for k, v in state.items() if ".b_" in k or k.endswith("b_U")}
    nonzero = [k for k, v in biases.items() if v.abs().max() > 0]
    if nonzero:
        raise ValueError(f"{meta['program']}: tracr biases are not zero: {nonzero}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def node_order(n_layers: int, n_heads: int) -> list[str]:
    order = ["input"]
    for layer in range(n_layers):
        order += [f"{layer}.{h}" for h in range(n_heads)] + [f"m{layer}"]
    return order + ["logits"]


def node_layer(node: str) -> float:
    """Position in the forward pass: heads of layer l at l, MLP l at l + 0.5."""
    if node == "input":
        return -1.0
    if node == "logits":
        return float("inf")
    if node.startswith("m"):
        return int(node[1:]) + 0.5
    return float(node.split(".")[0])


def _labels_of(matrix: np.ndarray, labels: list[str], axis: int) -> list[str]:
    """Residual labels with a nonzero entry; axis = the residual axis of `matrix`."""
    used = np.abs(matrix).max(axis=1 - axis) > EDGE_TOL
    return [lab for lab, u in zip(labels, used) if u]


def circuit_from_weights(model: HookedTransformer, labels: list[str]) -> dict:
    """Edges src -> dest (channel q/k/v for heads, None otherwise) where the source writes a
    residual subspace the destination reads: max |W_write @ W_read| > EDGE_TOL."""
    cfg = model.cfg
    np_ = lambda x: x.detach().double().numpy()  # noqa: E731
    writes: dict[str, list[np.ndarray]] = {"input": [np_(model.W_E), np_(model.W_pos)]}
    reads: dict[tuple[str, str | None], np.ndarray] = {}
    for layer in range(cfg.n_layers):
        for h in range(cfg.n_heads):
            node = f"{layer}.{h}"
            writes[node] = [np_(model.W_O[layer, h])]
            for ch, w in zip(CHANNELS, (model.W_Q, model.W_K, model.W_V)):
                reads[(node, ch)] = np_(w[layer, h])
        writes[f"m{layer}"] = [np_(model.W_out[layer])]
        reads[(f"m{layer}", None)] = np_(model.W_in[layer])
    reads[("logits", None)] = np_(model.W_U)

    order = node_order(cfg.n_layers, cfg.n_heads)
    rank = {n: i for i, n in enumerate(order)}
    channel_rank = {"q": 0, "k": 1, "v": 2, None: 3}
    edges, via = [], {}
    for (dest, channel), read in reads.items():
        for src, mats in writes.items():
            if not can_read(src, dest):
                continue
            strength = max(float(np.abs(w @ read).max()) for w in mats)
            if strength > EDGE_TOL:
                edges.append({"src": src, "dest": dest, "channel": channel})
                written = {lab for w in mats for lab in _labels_of(w, labels, axis=1)}
                read_labels = set(_labels_of(read, labels, axis=0))
                via[edge_key(edges[-1])] = [
                    lab for lab in labels if lab in written and lab in read_labels
                ]
    edges.sort(key=lambda e: (rank[e["dest"]], channel_rank[e["channel"]], rank[e["src"]]))

    # Dead ends: keep an edge only if its destination reaches logits.
    alive = {"logits"}
    for node in reversed(order):
        if any(e["src"] == node and e["dest"] in alive for e in edges):
            alive.add(node)
    on_path = [e for e in edges if e["dest"] in alive and e["src"] in alive]

    nodes = {}
    for node in order:
        entry: dict = {"layer": None if node in ("input", "logits") else int(node_layer(node))}
        if node in writes:
            written = {lab for w in writes[node] for lab in _labels_of(w, labels, axis=1)}
            entry["writes"] = [lab for lab in labels if lab in written]
        if node == "logits" or node.startswith("m"):
            entry["reads"] = _labels_of(reads[(node, None)], labels, axis=0)
        elif node != "input":
            entry["reads"] = {ch: _labels_of(reads[(node, ch)], labels, axis=0) for ch in CHANNELS}
        nodes[node] = entry
    return {
        "edge_tolerance": EDGE_TOL,
        "nodes": nodes,
        "edges_weights": edges,
        "edges_on_path": on_path,
        "nodes_on_path": [n for n in order if n in alive],
        "edge_via": {edge_key(e): via[edge_key(e)] for e in edges},
    }


def can_read(src: str, dest: str) -> bool:
    """Sources strictly before the destination in the forward pass (MLP l reads heads of l)."""
    if src == "logits" or dest == "input":
        return False
    return node_layer(src) < node_layer(dest)


def edge_key(edge: dict) -> str:
    channel = f"[{edge['channel']}]" if edge["channel"] else ""
    return f"{edge['src']}->{edge['dest']}{channel}"


def _group_by_length(examples: list[dict]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(len(ex["ids"]), []).append(i)
    return [groups[n] for n in sorted(groups)]


def interchange_pairs(examples: list[dict]) -> list[list[int]]:
    """[clean, corrupt]: each example with the next stored example of its length (cyclic)."""
    pairs = []
    for group in _group_by_length(examples):
        pairs += [[i, group[(j + 1) % len(group)]] for j, i in enumerate(group)]
    return sorted(pairs)


def _source_output(model: HookedTransformer, cache, src: str) -> torch.Tensor:
    if src == "input":
        return cache[hooks.EMBED] + cache[hooks.POS_EMBED]
    if src.startswith("m"):
        return cache[hooks.mlp_out(int(src[1:]))]
    layer, head = (int(x) for x in src.split("."))
    z = cache[hooks.attn_z(layer)][:, :, head]  # [batch, pos, d_head]
    return z @ model.W_O[layer, head]


def _dest_hook(model: HookedTransformer, dest: str, channel: str | None):
    """(hook name, index of the destination's slice) for what the destination reads."""
    if dest == "logits":
        return hooks.resid_post(model.cfg.n_layers - 1), (...,)
    if dest.startswith("m"):
        return hooks.mlp_in(int(dest[1:])), (...,)
    layer, head = (int(x) for x in dest.split("."))
    return hooks.qkv_input(layer, channel), (slice(None), slice(None), head)


def ablation_effects(model: HookedTransformer, examples: list[dict], edges: list[dict]) -> dict:
    """Per edge, only that edge ablated (zero: dest does not see the source; interchange: sees
    its output on the paired input): largest non-BOS logit change, argmax changes."""
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    pairs = dict(map(tuple, interchange_pairs(examples)))
    effects: dict[str, dict] = {"zero": {}, "interchange": {}}
    for group in _group_by_length(examples):
        tokens = torch.tensor([examples[i]["ids"] for i in group])
        corrupt = torch.tensor([examples[pairs[i]]["ids"] for i in group])
        with torch.no_grad():
            clean_logits, clean = model.run_with_cache(tokens)
            _, corrupted = model.run_with_cache(corrupt)
        for e in edges:
            src_clean = _source_output(model, clean, e["src"])
            deltas = {
                "zero": -src_clean,
                "interchange": _source_output(model, corrupted, e["src"]) - src_clean,
            }
            name, index = _dest_hook(model, e["dest"], e["channel"])
            for kind, delta in deltas.items():

                def hook(x, hook, delta=delta, index=index):
                    x = x.clone()
                    x[index] = x[index] + delta
                    return x

                with torch.no_grad():
                    logits = model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])
                change = (logits - clean_logits)[:, 1:].abs().max().item()
                flips = (logits[:, 1:].argmax(-1) != clean_logits[:, 1:].argmax(-1)).sum().item()
                entry = effects[kind].setdefault(
                    edge_key(e), {"max_logit_change": 0.0, "argmax_changes": 0}
                )
                entry["max_logit_change"] = max(entry["max_logit_change"], _round(change))
                entry["argmax_changes"] += int(flips)
    model.set_use_split_qkv_input(False)
    model.set_use_hook_mlp_in(False)
    return effects


def _round(x: float) -> float:
    return float(f"{x:.9g}")  # float32 precision; keeps the fixture small


def check_against_tracr(model: HookedTransformer, meta: dict) -> dict:
    """Converted model vs tracr on every example: argmax, output space, final residual."""
    worst_out = worst_resid = 0.0
    argmax_wrong = 0
    labels = meta["output_labels"]
    for ex in meta["examples"]:
        tokens = torch.tensor([ex["ids"]])
        with torch.no_grad():
            logits, cache = model.run_with_cache(tokens)
        final = cache[hooks.resid_post(model.cfg.n_layers - 1)][0].double().numpy()
        out = logits[0].double().numpy()
        worst_out = max(worst_out, float(np.abs(out - np.array(ex["output_space"])).max()))
        worst_resid = max(worst_resid, float(np.abs(final - np.array(ex["final_residual"])).max()))
        if meta.get("output_encoding") == "numerical":  # the one logit is the value
            argmax_wrong += not np.allclose(out[1:, 0], ex["tracr_output"][1:], atol=CHECK_TOL)
        else:
            argmax_wrong += [labels[i] for i in out.argmax(-1)][1:] != ex["tracr_output"][1:]
    if argmax_wrong or worst_out > CHECK_TOL or worst_resid > CHECK_TOL:
        raise AssertionError(
            f"{meta['program']}: converted model differs from tracr: argmax wrong on "
            f"{argmax_wrong} examples, output space max diff {worst_out:.2e}, final residual "
            f"max diff {worst_resid:.2e}"
        )
    return {"max_abs_diff_output_space": worst_out, "max_abs_diff_final_residual": worst_resid}


def convert(raw: Path, out: Path) -> dict:
    meta = json.loads((raw / "meta.json").read_text())
    with np.load(raw / "weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    model = build_model(meta, weights)
    diffs = check_against_tracr(model, meta)
    circuit = circuit_from_weights(model, meta["residual_labels"])
    effects = ablation_effects(model, meta["examples"], circuit["edges_on_path"])
    matters = lambda kind: [  # noqa: E731
        e
        for e in circuit["edges_on_path"]
        if effects[kind][edge_key(e)]["max_logit_change"] > EFFECT_TOL
    ]
    circuit = {
        "program": meta["program"],
        **circuit,
        "edges_zero_ablation": matters("zero"),
        "edges_interchange_ablation": matters("interchange"),
        "ablation": {
            "effect_tolerance": EFFECT_TOL,
            "zero": "the destination does not see the source's output (this edge only)",
            "interchange": (
                "the destination sees the source's output on the corrupted input instead; "
                "pairs [clean, corrupt] are example indices in tracr.json"
            ),
            "interchange_pairs": interchange_pairs(meta["examples"]),
            "effects": effects,
        },
    }

    examples = [
        {
            "input": ex["input"],
            "ids": ex["ids"],
            "tracr_output": ex["tracr_output"],
            "output_space": [[_round(x) for x in row] for row in ex["output_space"]],
        }
        for ex in meta["examples"]
    ]
    info = {
        "program": meta["program"],
        "description": meta["description"],
        "output_sop": meta["output_sop"],
        "output_encoding": meta.get("output_encoding", "categorical"),
        "vocab": meta["vocab"],
        "bos": meta["bos"],
        "pad": meta["pad"],
        "max_seq_len": meta["max_seq_len"],
        "output_labels": meta["output_labels"],
        "output_space_labels": meta["output_space_labels"],
        "residual_labels": meta["residual_labels"],
        "layers": meta["layers"],
        "rasp_graph": meta["rasp_graph"],
        "tracr_version": meta["tracr_version"],
        "jax_version": meta["jax_version"],
        "conversion_check": diffs,
        "notes": (
            "Token ids index `vocab`; every input starts with `bos` at position 0 (tracr gives "
            "position 0 no positional embedding; position i >= 1 is `indices:{i-1}`). Logit "
            "index j means output_labels[j]; the output at the BOS position is meaningless. "
            "output_space is tracr's residual stream projected on the output SOp's directions "
            "(what the logits of this model are)."
        ),
        "examples": examples,
    }
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "tracr.json").write_text(json.dumps(info, indent=1) + "\n")
    (out / "circuit.json").write_text(json.dumps(circuit, indent=1) + "\n")
    save_model_dir(model, out)  # writes the manifest over every file, tracr.json included
    reloaded = load_model_dir(out)
    check_against_tracr(reloaded, meta)
    return {
        "program": meta["program"],
        "nodes": len(circuit["nodes"]),
        "nodes_on_path": len(circuit["nodes_on_path"]),
        "edges_weights": len(circuit["edges_weights"]),
        "edges_on_path": len(circuit["edges_on_path"]),
        "edges_zero_ablation": len(circuit["edges_zero_ablation"]),
        "edges_interchange_ablation": len(circuit["edges_interchange_ablation"]),
        **diffs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="compile_programs.py --out")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/tracr"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for raw in sorted(p for p in args.raw.iterdir() if (p / "meta.json").is_file()):
        t0 = time.perf_counter()
        summary = convert(raw, args.out / raw.name)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()

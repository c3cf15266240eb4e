"""tracr fixtures (tests/fixtures/tracr/<program>/): converted models and their known circuits.

No JAX here: each fixture folder holds the model directory, tracr's own outputs on stored
examples (`tracr.json`) and the circuit read off the weights (`circuit.json`). Regenerate with
the two scripts in scripts/tracr/ (see tests/fixtures/tracr/README.md).

The circuit is checked by an independent edge-level forward pass written here from the weights:
every destination reads the sum of its sources' outputs, edge by edge, so single edges can be
kept or dropped (zero ablation).
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import pytest
import torch

from circuitforge.model import hooks
from circuitforge.model.local_dir import load_model_dir

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tracr"
PROGRAMS = sorted(p.name for p in FIXTURES.iterdir() if (p / "config.json").is_file())
OUTPUT_TOL = 1e-4  # converted logits vs tracr's raw output-space activations
SIGNAL_TOL = 1e-6  # what counts as "carries nothing"


@cache
def load(program: str):
    directory = FIXTURES / program
    model = load_model_dir(directory)
    info = json.loads((directory / "tracr.json").read_text())
    circuit = json.loads((directory / "circuit.json").read_text())
    return model, info, circuit


@cache
def batches(program: str) -> list[tuple[torch.Tensor, list[dict], list[int]]]:
    """The stored examples grouped by length (no padding: attention is bidirectional), with
    their indices in tracr.json."""
    _, info, _ = load(program)
    by_len: dict[int, list[int]] = {}
    for i, ex in enumerate(info["examples"]):
        by_len.setdefault(len(ex["ids"]), []).append(i)
    out = []
    for _, idx in sorted(by_len.items()):
        exs = [info["examples"][i] for i in idx]
        out.append((torch.tensor([e["ids"] for e in exs]), exs, idx))
    return out


def edge(e: dict) -> tuple[str, str, str | None]:
    return e["src"], e["dest"], e["channel"]


def rank(node: str) -> float:
    """Place in the forward pass: input, then per layer its heads, then its MLP; logits last."""
    if node == "input":
        return -1
    if node == "logits":
        return math.inf
    if node.startswith("m"):
        return int(node[1:]) + 0.5
    layer, _ = node.split(".")
    return int(layer)


def all_nodes(cfg) -> list[str]:
    nodes = ["input"]
    for layer in range(cfg.n_layers):
        nodes += [f"{layer}.{h}" for h in range(cfg.n_heads)] + [f"m{layer}"]
    return nodes + ["logits"]


def edge_forward(model, tokens, kept: set | None = None, patched=frozenset(), corrupt=None):
    """Forward pass over edges, in float64, written from the weights (not TransformerLens').

    Every destination input is the sum over earlier sources of `output(src) @ read(dest)`, over
    the edges in `kept` (all possible edges when None); an edge in `patched` carries
    `corrupt[src]` (node outputs of another run) instead. Returns the logits, per possible edge
    (src, dest, channel) max |output(src) @ read(dest)| on this batch, and the node outputs.
    """
    cfg = model.cfg
    W = {name: p.detach().double() for name, p in model.named_parameters()}
    outs = {"input": W["embed.W_E"][tokens] + W["pos_embed.W_pos"][: tokens.shape[1]]}
    signal: dict[tuple, float] = {}

    def gather(dest: str, channel: str | None, read: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(*tokens.shape, read.shape[-1], dtype=torch.float64)
        for src, out in outs.items():
            contribution = out @ read
            signal[(src, dest, channel)] = contribution.abs().max().item()
            if (src, dest, channel) in patched:
                assert corrupt is not None, "patched edges need the corrupt run's outputs"
                contribution = corrupt[src] @ read
            if kept is None or (src, dest, channel) in kept:
                total = total + contribution
        return total

    for layer in range(cfg.n_layers):
        a = hooks.block(layer, "attn")
        heads = {}
        for h in range(cfg.n_heads):
            node = f"{layer}.{h}"
            q = gather(node, "q", W[f"{a}.W_Q"][h]) + W[f"{a}.b_Q"][h]
            k = gather(node, "k", W[f"{a}.W_K"][h]) + W[f"{a}.b_K"][h]
            v = gather(node, "v", W[f"{a}.W_V"][h]) + W[f"{a}.b_V"][h]
            pattern = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(cfg.d_head), dim=-1)
            heads[node] = pattern @ v @ W[f"{a}.W_O"][h]
        outs.update(heads)  # heads of one layer do not read each other
        m = hooks.block(layer, "mlp")
        hidden = torch.relu(gather(f"m{layer}", None, W[f"{m}.W_in"]) + W[f"{m}.b_in"])
        outs[f"m{layer}"] = hidden @ W[f"{m}.W_out"] + W[f"{m}.b_out"]
    logits = gather("logits", None, W["unembed.W_U"]) + W["unembed.b_U"]
    return logits, signal, outs


def test_the_suite_has_the_kinds_of_program_edge_discovery_must_handle():
    infos = {p: load(p)[1] for p in PROGRAMS}
    circuits = {p: load(p)[2] for p in PROGRAMS}
    assert len(PROGRAMS) >= 12, PROGRAMS
    numerical = [p for p, i in infos.items() if i["output_encoding"] == "numerical"]
    assert len(numerical) >= 2 and all(len(infos[p]["output_labels"]) == 1 for p in numerical)
    mlp_layers = {p: sum(layer["mlp"] for layer in i["layers"]) for p, i in infos.items()}
    assert max(mlp_layers.values()) >= 3  # MLP lookup chains across 3+ layers
    constant = [  # edges that carry tracr's constant "one" direction or BOS
        p
        for p, c in circuits.items()
        if any({"one", "tokens:BOS"} & set(via) for via in c["edge_via"].values())
    ]
    assert len(constant) >= 4, constant


@pytest.mark.parametrize("program", PROGRAMS)
def test_model_has_tracr_shape(program):
    model, info, _ = load(program)
    cfg = model.cfg
    assert cfg.normalization_type is None and cfg.attention_dir == "bidirectional"
    assert cfg.act_fn == "relu"
    assert cfg.d_vocab == len(info["vocab"]) and cfg.d_vocab_out == len(info["output_labels"])
    assert cfg.n_ctx == info["max_seq_len"] + 1 and info["vocab"].index(info["bos"]) >= 0
    assert cfg.d_model == len(info["residual_labels"])
    for name, p in model.named_parameters():
        if ".b_" in name or name.endswith("b_U"):
            assert not p.any(), f"{name} is not zero"
    for j, label in enumerate(info["output_space_labels"]):  # W_U reads the output SOp's labels
        column = model.W_U[:, j]
        assert column[info["residual_labels"].index(label)] == 1 and column.abs().sum() == 1


@pytest.mark.parametrize("program", PROGRAMS)
def test_logits_match_tracr(program):
    model, info, _ = load(program)
    labels = info["output_labels"]
    for tokens, examples, _ in batches(program):
        assert all(e["input"][0] == info["bos"] for e in examples)
        assert tokens.tolist() == [[info["vocab"].index(t) for t in e["input"]] for e in examples]
        with torch.no_grad():
            logits = model(tokens)
        expected = torch.tensor([e["output_space"] for e in examples])
        torch.testing.assert_close(logits.double(), expected.double(), atol=OUTPUT_TOL, rtol=0)
        if info["output_encoding"] == "numerical":  # the one logit is the value itself
            for row, ex in zip(logits[..., 0].tolist(), examples):
                assert row[1:] == pytest.approx(ex["tracr_output"][1:], abs=OUTPUT_TOL)
            continue
        for row, ex in zip(logits.argmax(-1).tolist(), examples):
            assert [labels[i] for i in row[1:]] == ex["tracr_output"][1:], ex["input"]


@pytest.mark.parametrize("program", PROGRAMS)
def test_circuit_is_well_formed(program):
    model, _, circuit = load(program)
    nodes = all_nodes(model.cfg)
    assert list(circuit["nodes"]) == nodes
    weights = [edge(e) for e in circuit["edges_weights"]]
    on_path = [edge(e) for e in circuit["edges_on_path"]]
    assert len(set(weights)) == len(weights) and set(on_path) <= set(weights)
    assert on_path == [e for e in weights if e in set(on_path)]  # same order
    for src, dest, channel in weights:
        assert src in nodes and dest in nodes and src != "logits" and dest != "input"
        assert rank(src) < rank(dest), (src, dest)
        assert channel in (("q", "k", "v") if "." in dest else (None,))
    # On the path: every destination is logits or the source of an on-path edge, and every
    # edge left out ends in a node that does not reach logits.
    path_nodes = set(circuit["nodes_on_path"])
    assert {s for s, _, _ in on_path} | {d for _, d, _ in on_path} == path_nodes
    for _, dest, _ in on_path:
        assert dest == "logits" or any(s == dest for s, _, _ in on_path)
    for _, dest, _ in set(weights) - set(on_path):
        assert dest not in path_nodes
    assert "logits" in path_nodes and "input" in path_nodes
    # The labels quoted for each edge are written by its source and read by its destination.
    for e in circuit["edges_weights"]:
        key = f"{e['src']}->{e['dest']}" + (f"[{e['channel']}]" if e["channel"] else "")
        via = circuit["edge_via"][key]
        reads = circuit["nodes"][e["dest"]]["reads"]
        reads = reads[e["channel"]] if e["channel"] else reads
        assert via and set(via) <= set(circuit["nodes"][e["src"]]["writes"]) & set(reads)


@pytest.mark.parametrize("program", PROGRAMS)
def test_circuit_matches_an_edge_level_forward(program):
    """edges_weights are exactly the edges that carry a signal on the examples; the on-path
    circuit alone gives the full model's output; and the edges whose ablation (zero, or
    interchange with the stored pairs) moves a non-BOS logit are the ones circuit.json lists."""
    model, _, circuit = load(program)
    weights = {edge(e) for e in circuit["edges_weights"]}
    on_path = {edge(e) for e in circuit["edges_on_path"]}
    tol = circuit["ablation"]["effect_tolerance"]
    pairs = dict(map(tuple, circuit["ablation"]["interchange_pairs"]))
    _, info, _ = load(program)
    carried: dict[tuple, float] = {}
    matters: dict[str, set] = {"zero": set(), "interchange": set()}
    for tokens, _, idx in batches(program):
        with torch.no_grad():
            reference = model(tokens).double()
        full, signal, _ = edge_forward(model, tokens)
        torch.testing.assert_close(full, reference, atol=1e-5, rtol=0)
        for key, value in signal.items():
            carried[key] = max(carried.get(key, 0.0), value)
        circuit_only, _, _ = edge_forward(model, tokens, kept=on_path)
        torch.testing.assert_close(circuit_only, full, atol=1e-9, rtol=0)
        corrupt_tokens = torch.tensor([info["examples"][pairs[i]]["ids"] for i in idx])
        _, _, corrupt = edge_forward(model, corrupt_tokens)
        for e in on_path:
            zero, _, _ = edge_forward(model, tokens, kept=on_path - {e})
            swap, _, _ = edge_forward(
                model, tokens, kept=on_path, patched=frozenset({e}), corrupt=corrupt
            )
            for kind, logits in (("zero", zero), ("interchange", swap)):
                if (logits - full)[:, 1:].abs().max() > tol:  # position 0 is BOS
                    matters[kind].add(e)
    assert {e for e, v in carried.items() if v > SIGNAL_TOL} == weights
    assert matters["zero"] == {edge(e) for e in circuit["edges_zero_ablation"]}
    assert matters["interchange"] == {edge(e) for e in circuit["edges_interchange_ablation"]}

"""Compile RASP programs from tracr's own library and export their weights (runs under JAX).

Runs in a separate venv with tracr (not the project's venv; it must not import circuitforge):

    python3 -m venv /work/venvs/tracr
    /work/venvs/tracr/bin/pip install tracr-pypi==1.0.0
    OMP_NUM_THREADS=1 /work/venvs/tracr/bin/python scripts/tracr/compile_programs.py \
        --out /tmp/tracr_raw

For every program, `<out>/<program>/` gets:
- `weights.npz`: every haiku parameter of the compiled model, named like
  `transformer.layer_0.attn.query.w` (tracr's `/` replaced by `.`), plus `token_embed`, `pos_embed`;
- `meta.json`: vocabulary in input-encoder id order, output labels (index -> value), the residual
  labels, the residual labels of the output space (in output index order), the model config and
  which (layer, attn|mlp) modules tracr filled, the RASP graph, and the examples with tracr's
  decoded outputs, the RASP evaluator's outputs, tracr's raw output-space activations (the
  residual projected on the output space, before the argmax) and the final residual stream.

`scripts/tracr/convert_to_model_dirs.py` (project venv, no JAX) turns that into model directories.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
import zlib
from pathlib import Path

import haiku as hk
import jax
import numpy as np
from tracr.compiler import compiling, lib, nodes, rasp_to_graph
from tracr.craft import bases
from tracr.rasp import rasp

BOS = "BOS"
N_EXAMPLES = 50


def _programs():
    """name -> (builder, vocab, max_seq_len, unique_tokens, description). Built lazily."""
    return {
        "length": (
            lib.make_length,
            {"a", "b", "c"},
            5,
            False,
            "length: every position holds the number of (non-BOS) tokens, via SelectorWidth of "
            "an always-true selector (one attention head attending to BOS + one MLP).",
        ),
        "hist": (
            lib.make_hist,
            {"a", "b", "c"},
            5,
            False,
            "hist: every position holds how many times its token occurs in the input "
            "(SelectorWidth of Select(tokens, tokens, EQ)).",
        ),
        "reverse": (
            lambda: lib.make_reverse(rasp.tokens),
            {"a", "b", "c"},
            5,
            False,
            "reverse: the input tokens in reverse order. length (SelectorWidth), "
            "opp_idx = length - indices (MLP), opp_idx-1 (MLP), then an attention head that "
            "selects the key position whose index equals the query's opp_idx-1.",
        ),
        "sort_unique": (
            lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens),
            {1, 2, 3, 4, 5},
            5,
            True,
            "sort_unique: the input tokens sorted ascending (tokens must be unique). "
            "target_pos = SelectorWidth(Select(tokens, tokens, LT)), then an attention head that "
            "moves each token to position target_pos.",
        ),
        "count_less_freq": (
            lambda: lib.make_count_less_freq(2),
            {"a", "b", "c"},
            5,
            False,
            "count_less_freq(n=2): every position holds the number of tokens whose histogram "
            "count is <= 2 (hist = SelectorWidth(tokens==tokens), then SelectorWidth of "
            "Select(hist, hist, lambda k, q: k <= 2) over it).",
        ),
        # --- the larger suite (issue 16): numerical outputs, 3+-layer MLP chains, constants ---
        "frac_prevs": (
            lambda: lib.make_frac_prevs(rasp.tokens == "a"),
            {"a", "b", "c"},
            5,
            False,
            "frac_prevs: a single numerical output, the fraction of positions so far holding "
            "'a' (a numerical Map, then a mean-attention head over a causal-style selector).",
        ),
        "pair_balance": (
            lambda: lib.make_pair_balance(rasp.tokens, "(", ")"),
            {"(", ")"},
            5,
            False,
            "pair_balance: a single numerical output, frac_prevs('(') - frac_prevs(')'): two "
            "numerical heads and a numerical MLP that subtracts them.",
        ),
        "shuffle_dyck": (
            lambda: lib.make_shuffle_dyck(["()"]),
            {"(", ")"},
            5,
            False,
            "shuffle_dyck(()): 1 where the whole input is a balanced parenthesis string, else 0 "
            "(pair balance, any-negative and final-balance checks: attention and MLPs over 3 "
            "layers).",
        ),
        "sort": (
            lambda: lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1),
            {1, 2, 3, 4, 5},
            5,
            False,
            "sort: the input tokens sorted ascending, repeats allowed (keys made unique by a "
            "numerical MLP adding min_key * index / max_seq_len, then sort_unique).",
        ),
        "sort_freq": (
            lambda: lib.make_sort_freq(5),
            {"a", "b", "c"},
            5,
            False,
            "sort_freq: the tokens sorted by descending histogram count (hist, a numerical key, "
            "then sort).",
        ),
        "count_a": (
            lambda: lib.make_count(rasp.tokens, "a"),
            {"a", "b", "c"},
            5,
            False,
            "count_a: every position holds how many tokens are 'a' (SelectorWidth of "
            "Select(tokens, tokens, q == 'a')).",
        ),
        "map_chain": (
            _map_chain,
            {"a", "b", "c"},
            5,
            False,
            "map_chain: three categorical lookups in sequence, each of the previous value and the "
            "index (token -> rank -> shifted rank -> letter), one MLP per layer across three "
            "layers; no attention.",
        ),
        "token_at_index": (
            lambda: lib.make_nary_sequencemap(
                lambda t, i: f"{t}{i % 2}", rasp.tokens, rasp.indices
            ),
            {"a", "b", "c"},
            5,
            False,
            "token_at_index: one categorical MLP reading two inputs at once (a SequenceMap of the "
            "token and the parity of its index).",
        ),
        "first_token": (
            _first_token,
            {"a", "b", "c"},
            5,
            False,
            "first_token: every position holds the first token (a head whose query is the "
            "constant 'one' direction and key the index: it reads only a constant on one side).",
        ),
    }


def _map_chain():
    # SequenceMaps (two inputs each) are not fused the way consecutive Maps are: each of the
    # three needs its own MLP, and each reads the one before.
    letter_rank = {"a": 0, "b": 1, "c": 2}
    indices = rasp.indices
    rank = rasp.categorical(
        rasp.SequenceMap(lambda t, i: (letter_rank[t] + i) % 3, rasp.tokens, indices)
    )
    shifted = rasp.categorical(rasp.SequenceMap(lambda r, i: (r + i) % 3, rank, indices))
    return rasp.categorical(rasp.SequenceMap(lambda r, i: "xyz"[(r * 2 + i) % 3], shifted, indices))


def _first_token():
    first = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == 0)
    return rasp.categorical(rasp.Aggregate(first, rasp.tokens))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _examples(vocab, max_seq_len: int, unique: bool, seed: int) -> list[list]:
    """About N_EXAMPLES distinct inputs spread over all lengths 1..max_seq_len (BOS excluded)."""
    rng = random.Random(seed)
    tokens = sorted(vocab, key=str)
    out = []
    for n in range(1, max_seq_len + 1):
        quota = (N_EXAMPLES - len(out)) // (max_seq_len + 1 - n)  # short lengths have few inputs
        if unique:
            pool = list(itertools.permutations(tokens, n)) if n <= len(tokens) else []
        else:
            pool = list(itertools.product(tokens, repeat=n))
        rng.shuffle(pool)
        out.extend(list(x) for x in pool[:quota])
    return out


def _rasp_graph(program) -> dict:
    graph = rasp_to_graph.extract_rasp_graph(program).graph
    out = {}
    for label in sorted(graph.nodes):
        expr = graph.nodes[label][nodes.EXPR]
        entry = {"type": type(expr).__name__, "children": [c.label for c in expr.children]}
        if isinstance(expr, rasp.SOp):
            entry["encoding"] = rasp.get_encoding(expr).value
        if isinstance(expr, rasp.Select):
            pred = expr.predicate
            entry["predicate"] = pred.name if isinstance(pred, rasp.Comparison) else "custom"
        out[label] = entry
    return out


def compile_one(name: str, out_dir: Path) -> dict:
    builder, vocab, max_seq_len, unique, description = _programs()[name]
    # tracr labels SOps `{name}_{id}` from a global counter: restart it so that the labels of a
    # program do not depend on which programs were compiled before it in this process.
    rasp.RASPExpr._ids = itertools.count(1)
    program = builder()
    t0 = time.perf_counter()
    model = compiling.compile_rasp_to_model(
        program, vocab=vocab, max_seq_len=max_seq_len, compiler_bos=BOS
    )
    t_compile = time.perf_counter() - t0
    in_map = model.input_encoder.encoding_map
    vocab_ids = [None] * len(in_map)
    for value, i in in_map.items():
        vocab_ids[i] = value
    numerical = rasp.is_numerical(program)
    if numerical:  # one output dimension: the value itself, read off the SOp's one direction
        output_labels = [program.label]
        output_space_labels = [str(bases.BasisDirection(program.label))]
    else:
        out_map = model.output_encoder.encoding_map
        output_labels = [None] * len(out_map)
        for value, i in out_map.items():
            output_labels[i] = value
        # The output SOp's residual directions in output index order (tracr's unembedding).
        output_basis = sorted(out_map, key=out_map.get)
        output_space_labels = [str(bases.BasisDirection(program.label, v)) for v in output_basis]
    missing = [lab for lab in output_space_labels if lab not in model.residual_labels]
    if missing:
        raise ValueError(f"{name}: output directions {missing} not in the residual labels")

    # tracr's forward with the raw output-space activations instead of their argmax.
    @hk.without_apply_rng
    @hk.transform
    def raw_forward(emb):
        compiled = model.get_compiled_model()
        compiled.use_unembed_argmax = False
        return compiled(emb, use_dropout=False)

    cfg = model.model_config
    module_names = sorted(
        {"/".join(k.split("/")[:3]) for k in model.params if k.startswith("transformer/")}
    )
    filled = {}
    for key, params in model.params.items():
        if key.startswith("transformer/"):
            module = "/".join(key.split("/")[:3])
            filled[module] = filled.get(module, False) or bool(np.any(np.asarray(params["w"])))
    layers = []
    for layer in range(cfg.num_layers):
        layers.append(
            {
                "layer": layer,
                "attn": filled.get(f"transformer/layer_{layer}/attn", False),
                "mlp": filled.get(f"transformer/layer_{layer}/mlp", False),
            }
        )

    examples = []
    t0 = time.perf_counter()
    inputs = _examples(vocab, max_seq_len, unique, seed=zlib.crc32(name.encode()))
    for xs in inputs:
        tokens = [BOS, *xs]
        decoded = model.apply(tokens).decoded  # tracr's own path: encode, forward, decode
        ids = model.input_encoder.encode(tokens)
        raw = raw_forward.apply(model.params, jax.numpy.array([ids]))
        # [position, output dim]: a numerical output comes back flat, one value per position
        logits = np.asarray(raw.unembedded_output[0], dtype=np.float64).reshape(len(ids), -1)
        resid = np.asarray(raw.transformer_output.output[0], dtype=np.float64)
        examples.append(
            {
                "input": _jsonable(tokens),
                "ids": _jsonable(ids),
                "tracr_output": _jsonable(decoded),
                "rasp_output": _jsonable(program(xs)),
                "output_space": logits.tolist(),
                "final_residual": resid.tolist(),
            }
        )
    t_examples = time.perf_counter() - t0

    out = out_dir / name
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key, params in model.params.items():
        for par, value in params.items():
            short = key.replace("/", ".")
            short = {
                "token_embed.embeddings": "token_embed",
                "pos_embed.embeddings": "pos_embed",
            }.get(f"{short}.{par}", f"{short}.{par}")
            arrays[short] = np.asarray(value)
    np.savez(out / "weights.npz", **arrays)
    meta = {
        "program": name,
        "description": description,
        "output_sop": program.label,
        "output_encoding": "numerical" if numerical else "categorical",
        "vocab": _jsonable(vocab_ids),
        "bos": BOS,
        "pad": model.input_encoder.pad_token,
        "max_seq_len": max_seq_len,
        "n_positions": max_seq_len + 1,
        "output_labels": _jsonable(output_labels),
        "output_space_labels": output_space_labels,
        "residual_labels": list(model.residual_labels),
        "model_config": {
            "num_layers": cfg.num_layers,
            "num_heads": cfg.num_heads,
            "key_size": cfg.key_size,
            "mlp_hidden_size": cfg.mlp_hidden_size,
            "layer_norm": cfg.layer_norm,
            "causal": cfg.causal,
            "activation_function": "relu",
        },
        "modules": module_names,
        "layers": layers,
        "rasp_graph": _rasp_graph(program),
        "tracr_version": _tracr_version(),
        "jax_version": jax.__version__,
        "examples": examples,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    wrong = sum(e["tracr_output"][1:] != e["rasp_output"] for e in examples)
    print(
        f"{name}: {cfg.num_layers} layers, {cfg.num_heads} head(s), d_model "
        f"{len(model.residual_labels)}, {len(examples)} examples, tracr != RASP on {wrong}; "
        f"compile {t_compile:.1f} s, examples {t_examples:.1f} s -> {out}"
    )
    return meta


def _tracr_version() -> str:
    from importlib.metadata import version

    return version("tracr-pypi")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for <program>/ exports")
    parser.add_argument("--programs", nargs="*", default=list(_programs()))
    args = parser.parse_args()
    for name in args.programs:
        compile_one(name, args.out)


if __name__ == "__main__":
    main()

"""Benchmark of the activation atlas: throughput against a plain forward, and peak memory.

    OMP_NUM_THREADS=1 python bench/atlas.py [--documents 1280] [--big-documents 192]
        [--big-d-model 768] [--big-layers 4] [--memory-documents 540] [--repeats 3] [--profile]

Throughput, in real (unpadded) tokens per second, one thread, best of --repeats after a warm-up,
the paths timed interleaved in one process on the same documents (max_tokens 64, batch 64):
  plain      `model(tokens, stop_at_layer=L+1)` over the pre-collated batches: the floor
  core       ActivationAtlasModule.predict_step (run_with_hooks capture + NeuronProfile.update)
             over the same pre-collated batches
  lightning  the whole `Trainer.predict` of ActivationAtlasModule + DocumentDataModule (loader,
             tokenisation in the collate, hooks, profile; no logger, no callbacks)
  tokenise   the loader alone (tokenisation + collate), a part of lightning
on the demo model (assets/demo/model, blocks.3.mlp.hook_post) and on a random model with the
Gemma-2 architecture scaled down (--big-*), written as a local model directory in a temp folder
with the demo tokenizer, profiling its middle layer. Ratios are atlas tokens/s over plain.
Memory: peak RSS of fresh processes running the Lightning atlas on N and 10N demo documents (a
temp .jsonl repeats the corpus when 10N exceeds it), of one that only loads the model, and of a
plain forward over the 10N documents. The peak is VmHWM of /proc/self/status: Linux carries
ru_maxrss over fork + exec, so a child's ru_maxrss is at least this benchmark's own RSS (it is
printed too). --profile cProfiles the core loops.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import math
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402

from circuitforge.atlas.profile import NeuronProfile  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from datamodules import DocumentDataModule  # noqa: E402
from lightning_modules import ActivationAtlasModule, FrozenModelStrategy  # noqa: E402

DEMO_MODEL, DEMO_CORPUS = ROOT / "assets/demo/model", ROOT / "assets/demo/corpus.jsonl"
DEMO_LAYER, MAX_TOKENS, BATCH, K = 3, 64, 64, 10


def gemma_like(d_model: int, n_layers: int, d_vocab: int) -> dict:
    """Gemma-2-2B's architecture (heads of 256 -> 128, d_mlp 4x), scaled down; n_ctx 256."""
    n_heads, d_head = max(2, d_model // 128), 128
    return dict(
        d_model=d_model, d_head=d_head, n_heads=n_heads, n_key_value_heads=n_heads // 2,
        d_mlp=4 * d_model, n_layers=n_layers, n_ctx=256, eps=1e-06, d_vocab=d_vocab,
        act_fn="gelu_pytorch_tanh", initializer_range=0.02, normalization_type="RMS",
        rotary_base=10000.0, positional_embedding_type="rotary", rotary_dim=d_head,
        use_attn_scale=True, attn_scale=math.sqrt(d_head), window_size=4096,
        use_local_attn=True, attn_types=["local", "global"] * (n_layers // 2 + 1),
        attn_scores_soft_cap=50.0, output_logits_soft_cap=30.0, gated_mlp=True, final_rms=True,
        use_normalization_before_and_after=True, original_architecture="Gemma2ForCausalLM",
        init_weights=True,
    )  # fmt: skip


def write_big_model(directory: Path, d_model: int, n_layers: int) -> Path:
    from tokenizers import Tokenizer
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from circuitforge.manifest import write_manifest
    from circuitforge.model.local_dir import save_model_dir

    vocab = Tokenizer.from_file(str(DEMO_MODEL / "tokenizer.json")).get_vocab_size()
    fields = gemma_like(d_model, n_layers, vocab)
    fields["attn_types"] = fields["attn_types"][:n_layers]
    cfg = HookedTransformerConfig(**fields, seed=0, device="cpu")
    save_model_dir(HookedTransformer(cfg, move_to_device=False), directory)
    shutil.copy(DEMO_MODEL / "tokenizer.json", directory / "tokenizer.json")
    write_manifest(directory)
    return directory


def trainer(root: str) -> L.Trainer:
    return L.Trainer(
        logger=False,
        accelerator="cpu",
        strategy=FrozenModelStrategy(),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[],
        default_root_dir=root,
    )


def throughput(name: str, model_dir: Path, layer: int, n_docs: int, repeats: int, root: str):
    module = ActivationAtlasModule(FrozenModelSpec(path=str(model_dir)), layer=layer, k=K)
    model = module.frozen_model
    data = DocumentDataModule(str(DEMO_CORPUS), n_docs, MAX_TOKENS, batch_size=BATCH)
    data.setup()
    data.bind_tokenizer(model.tokenizer)
    batches = list(data.predict_dataloader())
    tokens = sum(int(b.length.sum()) for b in batches)
    padded = sum(b.tokens.numel() for b in batches)

    def plain() -> None:
        with torch.inference_mode():
            for b in batches:
                model(b.tokens, stop_at_layer=layer + 1)

    def core() -> NeuronProfile:
        module.stride, module.batches_done = MAX_TOKENS, 0  # else done batches are skipped
        module.profile = NeuronProfile.empty(module.k, module.units)
        with torch.inference_mode():
            for i, b in enumerate(batches):
                module.predict_step(b, i)
        return module.profile

    def lightning() -> NeuronProfile:
        module.batches_done = 0  # a module that predicted once skips its batches next time
        trainer(root).predict(module, datamodule=data, return_predictions=False)
        return module.profile

    def tokenise() -> None:
        list(data.predict_dataloader())

    core_keys = core().top.keys  # warm-ups; the two profiles must be the same
    assert torch.equal(core_keys, lightning().top.keys)
    paths = {"plain": plain, "core": core, "lightning": lightning, "tokenise": tokenise}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeats):
        for key, run in paths.items():
            start = time.perf_counter()
            out = run()
            times[key].append(time.perf_counter() - start)
            if isinstance(out, NeuronProfile):  # every counted token (<bos> is not) went in
                assert int(out.n_tokens) == tokens - n_docs, f"{key}: {int(out.n_tokens)}"
    best = {k: min(v) for k, v in times.items()}
    cfg = model.cfg
    print(
        f"\n[{name}] blocks.{layer}.mlp.hook_post ({cfg.n_layers} layers, d_model {cfg.d_model}, "
        f"d_mlp {cfg.d_mlp}), {n_docs} docs, {tokens:,} real tokens ({padded:,} padded), "
        f"best of {repeats}"
    )
    print(f"  {'path':<10} {'seconds':>8} {'tokens/s':>10} {'vs plain':>9}   all runs (s)")
    for key, seconds in best.items():
        ratio = best["plain"] / seconds if key != "tokenise" else float("nan")
        runs = " ".join(f"{t:.2f}" for t in times[key])
        print(f"  {key:<10} {seconds:8.2f} {tokens / seconds:10,.0f} {ratio:9.3f}   {runs}")
    return {"name": name, "layer": layer, "docs": n_docs, "cfg": cfg, **best}, core


def child(kind: str, source: str, n: int) -> None:
    """One memory measurement in this (fresh) process; prints a JSON line."""
    torch.set_num_threads(1)
    spec = FrozenModelSpec(path=str(DEMO_MODEL))
    start, tokens = time.perf_counter(), 0
    data = DocumentDataModule(source, n, MAX_TOKENS, batch_size=BATCH)
    if kind == "atlas":
        module = ActivationAtlasModule(spec, layer=DEMO_LAYER, k=K)
        with tempfile.TemporaryDirectory() as root:
            trainer(root).predict(module, datamodule=data, return_predictions=False)
        tokens = int(module.profile.n_tokens)
    else:
        model = load_frozen_model(spec)
        data.setup()
        data.bind_tokenizer(model.tokenizer)
        if kind == "plain":
            with torch.inference_mode():
                for b in data.predict_dataloader():
                    model(b.tokens, stop_at_layer=DEMO_LAYER + 1)
                    tokens += int(b.length.sum())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
    peak, seconds = int(status) / 1024, time.perf_counter() - start
    print(json.dumps({"peak_mb": peak, "maxrss_mb": maxrss, "tokens": tokens, "s": seconds}))


def run_child(kind: str, source: str, n: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--child", kind, "--source", source, "--n", str(n)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(n: int, tmp: Path) -> dict:
    texts = [line for line in DEMO_CORPUS.read_text().splitlines() if line.strip()]
    source = str(DEMO_CORPUS)
    if 10 * n > len(texts):
        source = str(tmp / "corpus_repeated.jsonl")
        repeats = -(-10 * n // len(texts))
        Path(source).write_text("\n".join(texts * repeats) + "\n")
    print(f"\npeak RSS of fresh processes (demo model, {source}):")
    print(
        f"  {'run':<18} {'docs':>6} {'tokens':>9} {'seconds':>7} {'VmHWM MB':>9} {'ru_maxrss':>9}"
    )
    got = {}
    for key, kind, docs in [
        ("load only", "load", n),
        ("atlas N", "atlas", n),
        ("atlas 10N", "atlas", 10 * n),
        ("plain forward 10N", "plain", 10 * n),
    ]:
        got[key] = run_child(kind, source, docs)
        r = got[key]
        print(
            f"  {key:<18} {docs:6d} {r['tokens']:9,} {r['s']:7.1f} {r['peak_mb']:9.0f} "
            f"{r['maxrss_mb']:9.0f}"
        )
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1280, help="demo documents (max 5400)")
    parser.add_argument("--big-documents", type=int, default=192, help="big-model documents")
    parser.add_argument("--big-d-model", type=int, default=768, help="0: skip the big model")
    parser.add_argument("--big-layers", type=int, default=4)
    parser.add_argument("--memory-documents", type=int, default=540, help="N (0: skip memory)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the core loops")
    parser.add_argument("--child", choices=["atlas", "plain", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.child:
        return child(args.child, args.source, args.n)

    start, rows, cores = time.perf_counter(), [], {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        runs = [("demo", DEMO_MODEL, DEMO_LAYER, args.documents)]
        if args.big_d_model:
            built = time.perf_counter()
            big = write_big_model(tmp / "big_model", args.big_d_model, args.big_layers)
            print(f"(big model written to a temp dir in {time.perf_counter() - built:.1f} s)")
            runs.append(("gemma2-shape", big, args.big_layers // 2, args.big_documents))
        for name, model_dir, layer, docs in runs:
            row, cores[name] = throughput(name, model_dir, layer, docs, args.repeats, tmp_name)
            rows.append(row)
        mem = memory(args.memory_documents, tmp) if args.memory_documents else None
        for name, core in cores.items() if args.profile else []:
            profiler = cProfile.Profile()
            profiler.runcall(core)
            print(f"\ncProfile of the {name} core loop: top 12 by own time, then update's calls")
            stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime")
            stats.print_stats(12)
            stats.print_callees(r"\(update\)|batch_top_k")

    print("\n=== summary: atlas vs plain forward to the same layer (1 thread, CPU) ===")
    for r in rows:
        c = r["cfg"]
        print(
            f"{r['name']:<13} ({c.n_layers}L d_model {c.d_model} d_mlp {c.d_mlp}, L{r['layer']}, "
            f"{r['docs']} docs): core {r['plain'] / r['core']:.3f}x, "
            f"lightning {r['plain'] / r['lightning']:.3f}x of plain tokens/s "
            f"(tokenise alone {r['tokenise'] / r['plain']:.1%} of plain time)"
        )
    if mem:
        n, big = mem["atlas N"], mem["atlas 10N"]
        print(
            f"peak RSS, atlas on N -> 10N docs ({n['tokens']:,} -> {big['tokens']:,} counted "
            f"tokens): {n['peak_mb']:.0f} -> {big['peak_mb']:.0f} MB "
            f"({big['peak_mb'] / n['peak_mb']:.3f}x); model loaded only "
            f"{mem['load only']['peak_mb']:.0f} MB; plain forward on 10N "
            f"{mem['plain forward 10N']['peak_mb']:.0f} MB"
        )
    print(f"(benchmark wall time {time.perf_counter() - start:.0f} s, torch threads 1)")


if __name__ == "__main__":
    main()

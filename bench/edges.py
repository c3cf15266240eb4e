"""Benchmark: one training step of edge coefficients, four ways, same model and batch.

    python bench/edges.py [--arch gpt2|demo] [--batch 8] [--pos 16] [--steps 3]

Methods, each in its own subprocess (so peak memory is its own), one thread each:
  plain      a plain forward + backward of the model (weights trainable): the floor
  one_pass   EdgeCoefficientsModule's step: corrupted run without gradients + ONE masked forward
             with every edge coefficient + backward + Adam (circuitforge/edges/masked_forward.py)
  per_layer  the original algorithm: n_layers + 1 passes per step (circuitforge/edges/reference.py)
  autocircuit  auto-circuit's learned-mask training (Subnetwork Edge Probing) in its own venv
             (bench/autocircuit_worker.py; skipped with a notice if the venv is missing)
Prints seconds per step and peak RSS growth during the steps, and the ratios to one_pass.
The model is random with the exact GPT-2 small architecture (or the demo model); same seed,
same tokens for every method.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUTOCIRCUIT_PYTHON = Path(
    os.environ.get("AUTOCIRCUIT_PYTHON", "/work/venvs/autocircuit/bin/python")
)
GPT2 = dict(
    n_layers=12,
    d_model=768,
    n_heads=12,
    d_head=64,
    d_mlp=3072,
    n_ctx=1024,
    d_vocab=50257,
    act_fn="gelu_new",
    normalization_type="LN",
)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker(method: str, model_dir: str, batch_file: str, steps: int) -> dict:
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from circuitforge.edges import parameterisation as param
    from circuitforge.edges.graph import EdgeGraph, GraphShape
    from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
    from circuitforge.edges.reference import PassByPassForward
    from circuitforge.model.local_dir import load_model_dir

    model = load_model_dir(Path(model_dir))
    model.eval()
    batch = load_file(batch_file)
    clean, corrupt = batch["clean"], batch["corrupt"]
    rows = torch.arange(clean.shape[0])

    def loss_of(logits):
        last = logits[:, -1]
        return -(last[rows, batch["answer"]] - last[rows, batch["wrong_answer"]]).mean()

    graph = EdgeGraph(GraphShape.of(model))
    theta = torch.nn.Parameter(param.initial_parameters("sigmoid", len(graph.edges)))
    optimizer = torch.optim.Adam([theta], lr=0.1)
    if method == "plain":
        model.requires_grad_(True)

        def step():
            model.zero_grad()
            loss_of(model(clean)).backward()
    else:
        model.requires_grad_(False)
        forward = (MaskedForward if method == "one_pass" else PassByPassForward)(model, graph)

        def step():
            with torch.no_grad():
                ablated = (
                    forward.record(corrupt)[0] if method == "one_pass" else forward.record(corrupt)
                )
            grid = dense_coefficients(graph, param.coefficients("sigmoid", theta, sample=True))
            optimizer.zero_grad()
            loss_of(forward(clean, ablated, grid)).backward()
            optimizer.step()

    step()  # warm-up
    before = rss_mb()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "step_s": sum(times) / len(times),
        "peak_growth_mb": max(0.0, peak - before),
        "n_edges": len(graph.edges),
    }


def run_method(method: str, model_dir: str, batch_file: str, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if method == "autocircuit":
        if not AUTOCIRCUIT_PYTHON.exists():
            return {"skipped": f"no auto-circuit venv at {AUTOCIRCUIT_PYTHON} (worker docstring)"}
        command = [
            str(AUTOCIRCUIT_PYTHON),
            str(ROOT / "bench/autocircuit_worker.py"),
            "--model-dir",
            model_dir,
            "--batch",
            batch_file,
            "--steps",
            str(steps),
            "--warmup",
            "1",
            "--threads",
            "1",
            "--timing",
            "adam",
        ]
    else:
        command = [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--model-dir",
            model_dir,
            "--batch-file",
            batch_file,
            "--steps",
            str(steps),
        ]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"failed": out.stderr[-2000:]}
    result = json.loads(lines[-1][len("RESULT ") :])
    if method == "autocircuit":
        growth = result.get("peak_rss_train_mb", result["peak_rss_mb"]) - result["rss_before_mb"]
        result = {
            "step_s": result["step_s"],
            "peak_growth_mb": growth,
            "n_edges": result["n_edges"],
        }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description="edge-coefficient step: one pass vs others")
    p.add_argument("--arch", choices=["gpt2", "demo"], default="gpt2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--pos", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--methods", default="plain,one_pass,per_layer,autocircuit")
    p.add_argument("--worker")
    p.add_argument("--model-dir")
    p.add_argument("--batch-file")
    args = p.parse_args()
    if args.worker:
        print(
            "RESULT " + json.dumps(worker(args.worker, args.model_dir, args.batch_file, args.steps))
        )
        return

    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from circuitforge.model.local_dir import save_model_dir
    from circuitforge.model.spec import FrozenModelSpec, load_frozen_model

    tmp = Path(tempfile.mkdtemp(prefix="bench_edges_"))
    if args.arch == "gpt2":
        model_dir = tmp / "model"
        save_model_dir(load_frozen_model(FrozenModelSpec(config=GPT2)), model_dir)
    else:
        model_dir = ROOT / "assets/demo/model"
    d_vocab = load_frozen_model(FrozenModelSpec(path=str(model_dir))).cfg.d_vocab
    g = torch.Generator().manual_seed(0)
    tensors = {
        "clean": torch.randint(4, d_vocab, (args.batch, args.pos), generator=g),
        "corrupt": torch.randint(4, d_vocab, (args.batch, args.pos), generator=g),
        "answer": torch.randint(4, d_vocab, (args.batch,), generator=g),
        "wrong_answer": torch.randint(4, d_vocab, (args.batch,), generator=g),
    }
    batch_file = tmp / "batch.safetensors"
    save_file(tensors, str(batch_file))
    print(
        f"model: {args.arch} (random weights: {args.arch == 'gpt2'}), batch {args.batch} x "
        f"{args.pos}, {args.steps} timed steps after one warm-up, 1 thread, own process each"
    )
    results = {}
    for method in args.methods.split(","):
        results[method] = run_method(method, str(model_dir), str(batch_file), args.steps)
        print(f"  {method:12s} {json.dumps(results[method])[:300]}", flush=True)
    base = results.get("one_pass", {})
    print("\nratios (method / one_pass): step time, peak memory growth")
    for method, r in results.items():
        if "step_s" in r and "step_s" in base:
            mem = (
                r["peak_growth_mb"] / base["peak_growth_mb"]
                if base["peak_growth_mb"]
                else float("nan")
            )
            print(f"  {method:12s} time x{r['step_s'] / base['step_s']:.2f}   memory x{mem:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

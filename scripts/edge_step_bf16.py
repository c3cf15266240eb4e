"""The edge step in bf16 against fp32 on this CPU, in one process: time ratio and score change.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/edge_step_bf16.py \
        --config configs/edges/gemma3_ioi.yaml

One edge step = the ablation run (corrupted prompts, no gradients) + the masked forward with
every coefficient applied + the backward to the coefficients (`EdgeCoefficientsModule`'s step).
At all coefficients 1 the gradient is the EAP score of every edge, so "the largest change in
scores" is max |g_bf16 - g_fp32| over max |g_fp32|, with the top-k overlap of the |score|
rankings. fp32 and bf16 (`torch.autocast`) steps alternate, `--repeats` of each; medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.edges.graph import EdgeGraph, GraphShape  # noqa: E402
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients  # noqa: E402
from circuitforge.edges.objectives import logit_difference  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from datamodules.prompt_pairs import PromptPairDataModule  # noqa: E402


def edge_step(forward: MaskedForward, batch, bf16: bool) -> tuple[float, torch.Tensor]:
    started = time.perf_counter()
    n = len(forward.graph.edges)
    coefficients = torch.ones(n, requires_grad=True)
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        with torch.no_grad():
            ablated = forward.record(batch.corrupt)[0]
        logits = forward(batch.clean, ablated, dense_coefficients(forward.graph, coefficients))
    ld = logit_difference(logits.float(), batch.read, batch.answer, batch.wrong_answer).mean()
    (grad,) = torch.autograd.grad(ld, coefficients)
    return time.perf_counter() - started, grad


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", default="configs/edges/gemma3_ioi.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = yaml.safe_load(Path(args.config).read_text())
    init = config["model"]["init_args"]
    model = load_frozen_model(FrozenModelSpec(**init["model"]))
    graph = EdgeGraph(
        GraphShape.of(model), init.get("split_qkv", True), init.get("include_mlp", True)
    )
    forward = MaskedForward(model, graph)
    data_args = {k: v for k, v in config["data"]["init_args"].items() if k != "batch_size"}
    data = PromptPairDataModule(**(data_args | {"n_train": args.batch, "batch_size": args.batch}))
    data.bind_model(model)
    batch = next(iter(data.test_dataloader()))
    edge_step(forward, batch, False)  # warm-up (allocations, caches)
    times: dict[bool, list[float]] = {False: [], True: []}
    grads: dict[bool, torch.Tensor] = {}
    for _ in range(args.repeats):
        for bf16 in (False, True):
            seconds, grads[bf16] = edge_step(forward, batch, bf16)
            times[bf16].append(seconds)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    g32, g16 = grads[False], grads[True]
    change = ((g16 - g32).abs().max() / g32.abs().max()).item()
    overlap = {}
    for fraction in (0.01, 0.05, 0.2):
        k = max(1, int(fraction * g32.numel()))
        top32 = set(g32.abs().topk(k).indices.tolist())
        top16 = set(g16.abs().topk(k).indices.tolist())
        overlap[f"top_{fraction:g}"] = round(len(top32 & top16) / k, 3)
    row = {
        "config": args.config,
        "edges": g32.numel(),
        "batch": list(batch.clean.shape),
        "fp32_seconds": [round(t, 2) for t in times[False]],
        "bf16_seconds": [round(t, 2) for t in times[True]],
        "speed_ratio_fp32_over_bf16": round(fp32 / bf16, 2),
        "max_score_change_relative": change,
        "top_overlap": overlap,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()

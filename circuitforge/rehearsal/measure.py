"""Gemma-2-2B's cost on this CPU, measured by its parts, and what the seed's two-GPU plan puts on
each device.

A whole fp32 Gemma-2-2B (10.4 GB of weights, about twice that while loading) does not fit beside
the machine's other work, so both dtypes are measured on single blocks at the real shapes (random
weights; the time of a block does not depend on its values) and scaled by the blocks a run
uses: a Patchscope step runs blocks S..T forward and backward (one prompt of a few tokens), an
atlas batch runs blocks 0..T forward (32 documents x 128 tokens for the hub config).
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import torch


def gemma2_config(dtype: torch.dtype):
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config

    return get_pretrained_model_config("gemma-2-2b", device="cpu", dtype=dtype)


def _block(cfg, layer: int):
    from transformer_lens.components.transformer_block import TransformerBlock

    block = TransformerBlock(cfg, layer)
    with torch.no_grad():
        for name, p in block.named_parameters():
            p.copy_(torch.zeros_like(p) if "b_" in name else 0.02 * torch.randn_like(p))
    return block.requires_grad_(False)


def _median_s(run, repeats: int, warm_up: bool = True) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `run`: on a shared machine the CPU time of this process is
    the steadier of the two (one thread: CPU time ~ the wall time of an idle machine)."""
    if warm_up:
        run()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def block_costs(dtype: torch.dtype, prompt_tokens: int, batch: int, tokens: int, repeats: int = 3):
    """Seconds of one block: forward+backward on one prompt, forward on an atlas batch."""
    cfg = gemma2_config(dtype)
    block = _block(cfg, 0)  # a local (sliding-window) layer; the global ones cost the same here

    def patchscope() -> None:
        residual = torch.randn(1, prompt_tokens, cfg.d_model, dtype=dtype, requires_grad=True)
        block(residual).float().sum().backward()

    def atlas() -> None:
        with torch.no_grad():
            block(torch.randn(batch, tokens, cfg.d_model, dtype=dtype))

    patchscope_wall, patchscope_cpu = _median_s(patchscope, repeats)
    atlas_wall, atlas_cpu = _median_s(atlas, 1, warm_up=False)  # seconds each: one is enough
    return {
        "block_parameters": sum(p.numel() for p in block.parameters()),
        "patchscope_block_wall_s": patchscope_wall,
        "patchscope_block_cpu_s": patchscope_cpu,
        "atlas_block_wall_s": atlas_wall,
        "atlas_block_cpu_s": atlas_cpu,
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def model_bytes(dtype: torch.dtype) -> dict[str, float]:
    """Weights of the whole model in `dtype` (GB): per block, embedding, unembedding, total."""
    cfg = gemma2_config(dtype)
    size = torch.tensor([], dtype=dtype).element_size()
    block = sum(p.numel() for p in _block(cfg, 0).parameters()) * size / 1e9
    table = cfg.d_vocab * cfg.d_model * size / 1e9  # W_E; TransformerLens keeps W_U apart
    return {
        "block_gb": block,
        "embed_gb": table,
        "unembed_gb": table,
        "total_gb": block * cfg.n_layers + 2 * table,
    }


def two_gpu_plan(devices: tuple[str, ...] = ("cuda:0", "cuda:1")) -> dict[str, Any]:
    """Weights (bf16) per device under the seed's plan (`DevicePlan.split`, as the strategy)."""
    from circuitforge.model.placement import DevicePlan

    cfg = gemma2_config(torch.bfloat16)
    sizes = model_bytes(torch.bfloat16)
    plan = DevicePlan.split(cfg.n_layers, list(devices))
    per: dict[str, dict[str, Any]] = {d: {"blocks": [], "weights_gb": 0.0} for d in devices}
    for layer, device in enumerate(plan.blocks):
        per[str(device)]["blocks"].append(layer)
        per[str(device)]["weights_gb"] += sizes["block_gb"]
    per[str(plan.input_device)]["weights_gb"] += sizes["embed_gb"]
    per[str(plan.output_device)]["weights_gb"] += sizes["unembed_gb"]
    for entry in per.values():
        blocks = entry.pop("blocks")
        entry["blocks"] = f"{blocks[0]}-{blocks[-1]}"
        entry["weights_gb"] = round(entry["weights_gb"], 2)
    return per


def measure(prompt_tokens: int = 6, batch: int = 32, tokens: int = 128) -> dict[str, Any]:
    """The table of docs/measurements/issue28_rehearsal.md (one thread, see the caller)."""
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "two_gpu_plan": two_gpu_plan()}
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        costs = block_costs(dtype, prompt_tokens, batch, tokens)
        sizes = model_bytes(dtype)
        out[name] = {
            **costs,
            **{k: round(v, 3) for k, v in sizes.items()},
            # gemma2_l8_n8526: blocks 8..12 forward and backward
            "patchscope_step_l8_cpu_s": 5 * costs["patchscope_block_cpu_s"],
            # gemma2_l12_pile10k: blocks 0..12 forward (the MLP of 12 read, the rest not run)
            "atlas_batch_cpu_s": 13 * costs["atlas_block_cpu_s"],
        }
    return out

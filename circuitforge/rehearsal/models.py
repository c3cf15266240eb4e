"""Stand-in model repositories: the published config.json, random weights at the real shapes.

Weights are written shard by shard (safetensors, with the index file the hub has for sharded
checkpoints), so the whole model is never in memory here. Names and shapes come from
transformers' own model class, instantiated on the meta device from the published config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from circuitforge.rehearsal import hub_cache

# google/gemma-2-2b config.json as published (transformers' Gemma2Config defaults are this model;
# TransformerLens's gemma-2-2b config agrees: d_model 2304, 26 layers, 8 heads of 256, 4 KV heads).
GEMMA2_2B_CONFIG: dict[str, Any] = {
    "architectures": ["Gemma2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 30.0,
    "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 2304,
    "initializer_range": 0.02,
    "intermediate_size": 9216,
    "max_position_embeddings": 8192,
    "model_type": "gemma2",
    "num_attention_heads": 8,
    "num_hidden_layers": 26,
    "num_key_value_heads": 4,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "torch_dtype": "float32",
    "transformers_version": "4.42.4",
    "use_cache": True,
    "vocab_size": 256000,
}

# gpt2 (openai-community/gpt2) config.json as published.
GPT2_CONFIG: dict[str, Any] = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "bos_token_id": 50256,
    "embd_pdrop": 0.1,
    "eos_token_id": 50256,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 768,
    "n_head": 12,
    "n_layer": 12,
    "n_positions": 1024,
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}


def parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every saved tensor's name and shape, from transformers' class for `config` (meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    hf_config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if getattr(hf_config, "tie_word_embeddings", False):
        shapes.pop("lm_head.weight", None)  # tied: not saved
    return shapes


def random_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator):
    """Norm weights near their identity (0 for Gemma's 1+w, 1 for LayerNorm), biases 0, the rest
    N(0, 0.02): a model whose activations stay finite through every layer."""
    if name.endswith("bias") and len(shape) == 1:
        return torch.zeros(shape, dtype=dtype)
    if "norm" in name or ".ln_" in name or name.endswith("ln_f.weight"):
        base = 0.0 if "gemma" in name or "layers." in name or name == "model.norm.weight" else 1.0
        return (base + 0.01 * torch.randn(shape, generator=gen)).to(dtype)
    return (0.02 * torch.randn(shape, generator=gen)).to(dtype)


def write_model(
    hub_dir: Path,
    repo_id: str,
    config: dict[str, Any],
    dtype: torch.dtype,
    shard_bytes: int,
    seed: int = 0,
) -> list[str]:
    """config.json and random safetensors at the real shapes; sharded like the hub above
    `shard_bytes` (`model-0000i-of-0000n.safetensors` + `model.safetensors.index.json`)."""
    hub_cache.add_text(hub_dir, repo_id, "config.json", json.dumps(config, indent=2))
    shapes = parameter_shapes(config)
    size = torch.tensor([], dtype=dtype).element_size()
    shards: list[list[str]] = [[]]
    used = 0
    for name, shape in shapes.items():
        n = size * int(torch.Size(shape).numel())
        if shards[-1] and used + n > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += n
    gen = torch.Generator().manual_seed(seed)
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    weight_map = {}
    for filename, shard in zip(names, shards):
        tensors = {n: random_tensor(n, shapes[n], dtype, gen) for n in shard}
        hub_cache.add_file(
            hub_dir, repo_id, filename, lambda p, t=tensors: save_file(t, p, {"format": "pt"})
        )
        weight_map.update({n: filename for n in shard})
        del tensors
    if len(names) > 1:
        total = sum(size * int(torch.Size(s).numel()) for s in shapes.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        hub_cache.add_text(
            hub_dir, repo_id, "model.safetensors.index.json", json.dumps(index, indent=2)
        )
    return names

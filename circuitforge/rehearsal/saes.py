"""Stand-in SAE repositories at the paths sae-lens resolves, random at the real shapes.

Gemma Scope (`gemma-scope-2b-pt-{res,att,mlp}-canonical`): `{path}/params.npz` in
`google/gemma-scope-2b-pt-{res,att,mlp}`, with the keys and shapes of the real files
(`W_enc` d_in x d_sae, `W_dec`, `b_enc`, `b_dec`, `threshold`); sae-lens derives the config
from the folder name. GPT-2 (`gpt2-small-res-jb`): `{path}/cfg.json` (the pre-6.0 format the
reformatted repository carries), `sae_weights.safetensors`, `sparsity.safetensors`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from circuitforge.rehearsal import hub_cache


def release_entry(release: str, sae_id: str) -> tuple[str, str]:
    """(repo_id, path in the repo) of `sae_id` in sae-lens's pretrained_saes.yaml."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise ValueError(f"sae-lens knows no release {release!r}")
    lookup = directory[release]
    if sae_id not in lookup.saes_map:
        raise ValueError(f"release {release!r} has no SAE {sae_id!r}")
    return lookup.repo_id, lookup.saes_map[sae_id]


def gemma_scope_d_in(repo_id: str) -> int:
    return 2048 if "-att" in repo_id else 2304  # attn.hook_z: 8 heads x 256


def write_gemma_scope(hub_dir: Path, release: str, sae_id: str, seed: int = 0) -> Path:
    repo_id, folder = release_entry(release, sae_id)
    d_in, d_sae = gemma_scope_d_in(repo_id), 16384 if "width_16k" in folder else None
    if d_sae is None:
        raise ValueError(f"{release}/{sae_id}: only width_16k stand-ins are written")
    rng = np.random.default_rng(seed)
    w_dec = rng.standard_normal((d_sae, d_in), dtype=np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    arrays = {
        "W_enc": np.ascontiguousarray(w_dec.T),
        "W_dec": w_dec,
        "b_enc": np.zeros(d_sae, np.float32),
        "b_dec": np.zeros(d_in, np.float32),
        "threshold": np.full(d_sae, 0.05, np.float32),
    }

    def write(path: Path) -> None:
        with path.open("wb") as f:
            np.savez(f, **arrays)  # np.savez appends .npz to a str path: pass the file

    return hub_cache.add_file(hub_dir, repo_id, f"{folder}/params.npz", write)


def write_gpt2_res_jb(hub_dir: Path, sae_id: str, seed: int = 0) -> Path:
    repo_id, folder = release_entry("gpt2-small-res-jb", sae_id)
    layer = int(sae_id.split(".")[1])
    d_in, d_sae = 768, 24576
    cfg = {
        "model_name": "gpt2-small",
        "hook_point": sae_id,
        "hook_point_layer": layer,
        "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext",
        "is_dataset_tokenized": False,
        "context_size": 128,
        "d_in": d_in,
        "device": "cpu",
        "seed": 42,
        "dtype": "torch.float32",
        "b_dec_init_method": "geometric_median",
        "expansion_factor": 32,
        "l1_coefficient": 8e-05,
        "lr": 0.0004,
        "train_batch_size": 4096,
        "d_sae": d_sae,
    }
    gen = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d_sae, d_in, generator=gen)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    weights = {
        "W_enc": w_dec.T.contiguous(),
        "W_dec": w_dec,
        "b_enc": torch.zeros(d_sae),
        "b_dec": torch.zeros(d_in),
    }
    hub_cache.add_text(hub_dir, repo_id, f"{folder}/cfg.json", json.dumps(cfg, indent=2))
    hub_cache.add_file(
        hub_dir,
        repo_id,
        f"{folder}/sparsity.safetensors",
        lambda p: save_file({"sparsity": torch.full((d_sae,), -3.0)}, p),
    )
    return hub_cache.add_file(
        hub_dir, repo_id, f"{folder}/sae_weights.safetensors", lambda p: save_file(weights, p)
    )

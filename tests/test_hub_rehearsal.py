"""The offline rehearsal of the hub configs (issue 28): its stand-in cache, and the fixes it led to.

The fast tests need no stand-ins; the slow one builds the GPT-2 stand-ins (about 2.3 GB in a
temporary folder) and runs GPT-2 hub configs from them with `scripts/rehearse_hub_runs.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from circuitforge.rehearsal import hub_cache
from tests.conftest import ROOT


def test_stand_in_files_are_where_huggingface_hub_looks_offline(tmp_path):
    from huggingface_hub import hf_hub_download, snapshot_download, try_to_load_from_cache

    hub = tmp_path / "hub"
    hub_cache.add_text(hub, "org/model", "config.json", '{"a": 1}')
    hub_cache.add_text(hub, "org/model", "sub/dir/params.txt", "x")
    hub_cache.add_text(hub, "org/data", "README.md", "card", repo_type="dataset")

    found = hf_hub_download("org/model", "config.json", cache_dir=hub, local_files_only=True)
    assert json.loads(open(found).read()) == {"a": 1}
    nested = hf_hub_download(
        "org/model", "params.txt", subfolder="sub/dir", cache_dir=hub, local_files_only=True
    )  # how sae-lens asks for Gemma Scope's params.npz
    assert open(nested).read() == "x"
    assert try_to_load_from_cache("org/data", "README.md", cache_dir=hub, repo_type="dataset")
    folder = snapshot_download(
        "org/data", repo_type="dataset", cache_dir=hub, local_files_only=True
    )
    assert (hub / "datasets--org--data" / "refs" / "main").read_text() == hub_cache.REVISION
    assert folder.endswith(hub_cache.REVISION)
    # each file stored once as a blob named by its sha256, linked from the snapshot
    blobs = list((hub / "models--org--model" / "blobs").iterdir())
    assert len(blobs) == 2 and all(len(b.name) == 64 for b in blobs)


def test_offline_hub_dataset_loads_from_the_hub_cache(tmp_path, monkeypatch):
    """Offline, `datasets.load_dataset(name)` reads only its own arrow cache; a dataset fetched
    into the hub cache (`huggingface-cli download --repo-type dataset`) must load too."""
    import datasets.config as datasets_config
    from huggingface_hub import constants

    from circuitforge.data.texts import load_texts
    from circuitforge.rehearsal.datasets import PILE_10K, write_pile_10k

    hub = tmp_path / "hub"
    texts = [f"document number {i}" for i in range(7)]
    write_pile_10k(hub, texts)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    assert load_texts(PILE_10K, 5) == texts[:5]
    assert load_texts(PILE_10K) == texts


def test_unprocessed_bf16_load_keeps_the_state_dict_as_is(monkeypatch):
    """TransformerLens 3.9 upcasts a whole state dict to fp32 even when no processing step is on
    (a 12.8 GB copy for Gemma-2-2B in bf16); our unprocessed load hands the tensors through."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.weight_processing import ProcessWeights

    from circuitforge.model import spec

    cfg = HookedTransformerConfig(
        n_layers=1, d_model=8, n_ctx=4, d_head=4, n_heads=2, d_vocab=11, act_fn="gelu",
        normalization_type="LN", dtype=torch.bfloat16,
    )  # fmt: skip
    state = HookedTransformer(cfg).state_dict()
    off = dict(fold_ln=False, center_writing_weights=False, center_unembed=False,
               fold_value_biases=False)  # fmt: skip

    copied = ProcessWeights.process_weights(dict(state), cfg, **off)  # TL's own: copies
    assert copied["blocks.0.attn.W_Q"].data_ptr() != state["blocks.0.attn.W_Q"].data_ptr()
    assert all(torch.equal(copied[k], v) for k, v in state.items())  # an exact round trip

    seen = {}

    def fake_load(name, dtype, device):  # what TransformerLens's loader does with the weights
        seen["out"] = ProcessWeights.process_weights(dict(state), cfg, **off)
        seen["folded"] = ProcessWeights.process_weights(dict(state), cfg, fold_ln=True)
        return "model"

    monkeypatch.setattr(HookedTransformer, "from_pretrained_no_processing", fake_load)
    monkeypatch.setattr("circuitforge.hub.is_cached", lambda *a, **k: True)
    assert spec._load_pretrained("gpt2", torch.bfloat16, process_weights=False) == "model"
    assert all(seen["out"][k] is v for k, v in state.items())  # no copy, no upcast
    # processing asked for still runs (centring the writing weights changes W_E)
    assert not torch.equal(seen["folded"]["embed.W_E"], state["embed.W_E"])
    assert (
        ProcessWeights.process_weights(dict(state), cfg, **off)["blocks.0.attn.W_Q"]
        is not (state["blocks.0.attn.W_Q"])
    )  # and TransformerLens's own is back afterwards


@pytest.mark.slow
def test_gpt2_hub_configs_run_from_stand_ins(tmp_path):
    """Stand-ins of gpt2 and gpt2-small-res-jb in a fresh offline cache; the GPT-2 DLA and logit
    lens configs run from it end to end (about 5 minutes on 2 shared cores)."""
    out = tmp_path / "out"
    only = "gpt2_ioi_dla,gpt2_ioi_logit_lens"
    command = [sys.executable, "scripts/rehearse_hub_runs.py", "--hf-home", str(tmp_path / "hf"),
               "--out", str(out), "--only", only]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3000)
    outcomes = json.loads((out / "rehearsal.json").read_text())
    assert done.returncode == 0, (done.stdout[-2000:], outcomes)
    assert [o["status"] for o in outcomes] == ["ran"] * 2, outcomes
    hub = tmp_path / "hf" / "hub"
    assert (hub / "models--gpt2" / "refs" / "main").is_file()
    jb = hub / "models--jbloom--GPT2-Small-SAEs-Reformatted" / "snapshots" / hub_cache.REVISION
    assert sorted(p.name for p in jb.iterdir()) == [f"blocks.{i}.hook_resid_pre" for i in
                                                    sorted(range(12), key=str)]  # fmt: skip
    for name, result in [("dla", "direct_logit_attribution"), ("logit_lens", "logit_lens")]:
        found = list((out / "runs" / f"analysis_gpt2_ioi_{name}").glob(f"*/results/{result}.json"))
        assert len(found) == 1, f"analysis_gpt2_ioi_{name} wrote no {result}.json"


HUB_SAE_CONFIGS = [
    "configs/patchscope/gemma2_l8_n8526.yaml",
    "configs/patchscope/gemma2_l11_n8526.yaml",
    "configs/atlas/reactivation_gemma2_l12.yaml",
    "configs/feature_circuits/gemma2_ioi.yaml",
    "configs/feature_circuits/gpt2_ioi.yaml",
]


def _sae_ids(config: dict) -> list[tuple[str, str]]:
    """(release, id) of every SAE a hub config reads, `{layer}` filled as the runs fill it."""
    from circuitforge.model.hooks import resid_pre
    from circuitforge.sae.matching import same_point_hooks

    init = config["model"]["init_args"]
    ids = []
    for group in init.get("saes", []):  # feature circuits: one SAE per listed layer
        source = group["source"]
        ids += [
            (source["release"], source["sae_id"].format(layer=layer)) for layer in group["layers"]
        ]
    for callback in config["trainer"].get("callbacks", []):
        sae = (callback.get("init_args") or {}).get("sae")
        if sae is None:
            continue
        # the Patchscope's SAE reads resid_pre of the source layer: resid_post of the one before
        point = same_point_hooks(resid_pre(init["source_layer"]))[-1]
        ids.append((sae["release"], sae["sae_id"].format(layer=int(point.split(".")[1]))))
    return ids


@pytest.mark.parametrize("path", HUB_SAE_CONFIGS)
def test_every_sae_a_hub_config_reads_resolves_in_sae_lens(path):
    """Each id is in sae-lens's directory, and the hook sae-lens gives it is the one we read."""
    import yaml
    from sae_lens.loading.pretrained_sae_loaders import get_gemma_2_config_from_hf

    from circuitforge.rehearsal.saes import release_entry

    ids = _sae_ids(yaml.safe_load((ROOT / path).read_text()))
    assert ids
    for release, sae_id in ids:
        repo_id, folder = release_entry(release, sae_id)
        layer = int(sae_id.split("_")[1].split("/")[0]) if "layer_" in sae_id else None
        if repo_id.startswith("google/gemma-scope-2b-pt-"):
            hook = get_gemma_2_config_from_hf(repo_id, folder, "cpu")["hook_name"]
            expected = {"res": "hook_resid_post", "att": "attn.hook_z", "mlp": "hook_mlp_out"}
            assert hook == f"blocks.{layer}.{expected[repo_id.rsplit('-', 1)[1]]}"
        else:
            assert folder == sae_id  # gpt2-small-res-jb: blocks.L.hook_resid_pre
    if "gemma2_l8" in path:
        assert ids == [("gemma-scope-2b-pt-res-canonical", "layer_7/width_16k/canonical")]

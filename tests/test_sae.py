import pytest
import torch
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.sae import SAEMetadata

from circuitforge.sae.decomposition import decompose
from circuitforge.sae.matching import (
    SAEMismatchError,
    SAESource,
    load_matching_sae,
    same_point_hooks,
)
from tests.conftest import DEMO_SAES


def test_same_point_hooks():
    assert same_point_hooks("blocks.8.hook_resid_pre") == [
        "blocks.8.hook_resid_pre",
        "blocks.7.hook_resid_post",
    ]
    assert same_point_hooks("blocks.0.hook_resid_pre") == ["blocks.0.hook_resid_pre"]
    assert same_point_hooks("blocks.3.hook_resid_post")[1] == "blocks.4.hook_resid_pre"


def test_layer_template_picks_the_sae_of_the_previous_layer():
    matched = load_matching_sae(
        SAESource(path=str(DEMO_SAES / "layer_{layer}")), "blocks.2.hook_resid_pre", 128
    )
    assert matched.name.endswith("layer_1") and matched.hook_name == "blocks.1.hook_resid_post"


def test_explicit_sae_of_the_wrong_layer_is_refused():
    with pytest.raises(SAEMismatchError, match="blocks.2.hook_resid_post"):
        load_matching_sae(
            SAESource(path=str(DEMO_SAES / "layer_2")), "blocks.2.hook_resid_pre", 128
        )


def test_sae_of_another_width_is_refused(tmp_path):
    cfg = JumpReLUSAEConfig(
        d_in=64, d_sae=32, metadata=SAEMetadata(hook_name="blocks.0.hook_resid_post")
    )
    JumpReLUSAE(cfg).save_model(str(tmp_path / "narrow"))
    with pytest.raises(SAEMismatchError, match="d_in=64.*d_model=128"):
        load_matching_sae(SAESource(path=str(tmp_path / "narrow")), "blocks.1.hook_resid_pre", 128)


def test_source_needs_path_or_release():
    with pytest.raises(ValueError):
        SAESource()
    with pytest.raises(ValueError, match="sae_id"):
        SAESource(release="gemma-scope-2b-pt-res-canonical")


def test_decomposition_against_brute_force():
    matched = load_matching_sae(
        SAESource(path=str(DEMO_SAES / "layer_0")), "blocks.1.hook_resid_pre", 128
    )
    x = torch.randn(128, generator=torch.Generator().manual_seed(1)) * 5
    out = decompose(matched, x, k=5)
    sae = matched.sae
    # brute force: TopK by hand (the demo SAEs are TopK), all features sorted
    pre = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    kept = sorted(range(pre.numel()), key=lambda i: -float(pre[i]))[: sae.cfg.k]
    acts = torch.zeros_like(pre)
    acts[kept] = pre[kept]
    order = sorted(range(acts.numel()), key=lambda i: -float(acts[i]))[:5]
    assert [f["feature"] for f in out["top_features"]] == order
    assert [f["activation"] for f in out["top_features"]] == pytest.approx(
        [float(acts[i]) for i in order], rel=1e-5
    )
    top = torch.zeros_like(acts)
    top[order] = acts[order]
    x_hat = top @ sae.W_dec + sae.b_dec
    assert out["norm_fraction_topk"] == pytest.approx(float(1 - (x - x_hat).norm() / x.norm()))

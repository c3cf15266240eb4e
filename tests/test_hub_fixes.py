"""Bugs the offline hub rehearsal found (issue 28), each tested without the stand-ins."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from circuitforge.atlas.vector_x import newest_match
from circuitforge.feature_circuits.points import affine_decoder, flat_hook_z


def hook_z_sae(n_heads: int = 2, d_head: int = 4, d_sae: int = 6) -> StandardSAE:
    cfg = StandardSAEConfig(
        d_in=n_heads * d_head, d_sae=d_sae, metadata=SAEMetadata(hook_name="blocks.0.attn.hook_z")
    )
    sae = StandardSAE(cfg)
    gen = torch.Generator().manual_seed(0)
    sae.load_state_dict(
        {k: torch.randn(v.shape, generator=gen) for k, v in sae.state_dict().items()}
    )
    sae.turn_on_forward_pass_hook_z_reshaping()  # what sae-lens does for Gemma Scope's att SAEs
    return sae.requires_grad_(False)


def test_a_hook_z_sae_with_sae_lens_reshaping_reads_and_writes_flat_z():
    sae = hook_z_sae()
    # before the fix: decode fails (the rehearsal met "no attribute 'd_head'" after a hub load;
    # here sae-lens's d_head is None and einops refuses)
    with pytest.raises(Exception, match="d_head|NoneType"):
        affine_decoder(sae)
    flat_hook_z(sae)
    decoder, bias = affine_decoder(sae)
    z = torch.randn(
        3, 5, 8, generator=torch.Generator().manual_seed(1)
    )  # [batch pos n_heads*d_head]
    # independent: the SAE's own formula written out
    pre = (z - sae.b_dec) @ sae.W_enc + sae.b_enc
    expected = torch.relu(pre)
    torch.testing.assert_close(sae.encode(z), expected)
    torch.testing.assert_close(sae.decode(expected), expected @ decoder + bias)
    torch.testing.assert_close(decoder, sae.W_dec)


def test_newest_atlas_match_takes_an_absolute_pattern(tmp_path: Path):
    old, new = (tmp_path / f"version_{i}" / "results" / "atlas.json" for i in (0, 1))
    for i, path in enumerate((old, new)):
        path.parent.mkdir(parents=True)
        path.write_text("{}")
        os.utime(path, (time.time() + i, time.time() + i))
    assert newest_match(str(tmp_path / "version_*" / "results" / "atlas.json")) == new


def bf16_demo_dla(drop: str | None = None):
    """DLA of the demo model cast to bf16 (as the Gemma-2 configs load), optionally with one
    piece left out of the decomposition."""
    from circuitforge.analysis import direct_logit
    from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
    from tests.analysis_models import BATCHES
    from tests.conftest import DEMO_MODEL

    spec = FrozenModelSpec(path=str(DEMO_MODEL), dtype="bfloat16")
    model, batch = load_frozen_model(spec), BATCHES["demo"]()
    pieces_of = direct_logit.residual_pieces

    def without(model, cache, read):
        names, pieces = pieces_of(model, cache, read)
        keep = [i for i, name in enumerate(names) if name != drop]
        return [names[i] for i in keep], pieces[:, keep]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(direct_logit, "residual_pieces", without)
        return direct_logit.direct_logit_attribution(model, batch)


def test_dla_in_bf16_sums_within_rounding():
    """The Gemma-2-2B DLA config loads bf16; the check's fp32 tolerance refused it (max gap 0.5).
    In bf16 the shares must still add up to what the fp32 model's DLA finds (itself checked
    against plain forwards in test_analysis_readouts), within bf16's error."""
    from circuitforge.analysis.direct_logit import direct_logit_attribution
    from tests.analysis_models import BATCHES, demo

    found = bf16_demo_dla()
    exact = direct_logit_attribution(demo(), BATCHES["demo"]())
    assert found.names == exact.names
    torch.testing.assert_close(found.before_softcap, exact.before_softcap, atol=0.1, rtol=0.02)
    torch.testing.assert_close(found.shares, exact.shares, atol=0.15, rtol=0.05)


@pytest.mark.parametrize("drop", ["m1", "2.0", "embed"])
def test_dla_in_bf16_still_refuses_a_missing_piece(drop):
    with pytest.raises(RuntimeError, match="do not sum to the final residual"):
        bf16_demo_dla(drop)


def plain_sae(d_in: int = 8, d_sae: int = 10, dtype: torch.dtype = torch.float32) -> StandardSAE:
    cfg = StandardSAEConfig(
        d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name="blocks.0.hook_resid_post")
    )
    sae = StandardSAE(cfg)
    gen = torch.Generator().manual_seed(2)
    sae.load_state_dict(
        {k: 3 * torch.randn(v.shape, generator=gen) for k, v in sae.state_dict().items()}
    )
    return sae.to(dtype).requires_grad_(False)


def test_affine_decoder_is_w_dec_itself_for_a_plain_decoder():
    """The Gemma-2 feature-circuit rehearsal ran out of memory: each point kept an fp32 copy of
    W_dec beside the SAE, and building it made the whole d_sae x d_sae identity once per chunk."""
    sae = plain_sae()
    decoder, bias = affine_decoder(sae)
    # independent: decode every one-hot feature vector, less decode(0)
    one_hot = torch.eye(10)
    expected = sae.decode(one_hot) - sae.decode(torch.zeros(1, 10))
    torch.testing.assert_close(decoder, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bias, sae.b_dec)
    assert decoder.data_ptr() == sae.W_dec.data_ptr()  # the same memory, no copy


def test_an_affine_decoder_that_is_not_w_dec_is_decoded_row_by_row():
    sae = plain_sae()
    plain = sae.decode
    sae.decode = lambda f: plain(2 * f) + 1  # type: ignore[method-assign]
    decoder, bias = affine_decoder(sae, chunk=4)  # 10 rows in chunks of 4, 4, 2
    assert decoder.data_ptr() != sae.W_dec.data_ptr()
    torch.testing.assert_close(decoder, 2 * sae.W_dec)  # independent: the formula
    torch.testing.assert_close(bias, sae.b_dec + 1)


def test_affine_decoder_of_a_bf16_sae_is_an_fp32_copy():
    sae = plain_sae(dtype=torch.bfloat16)
    decoder, _ = affine_decoder(sae, chunk=4)
    assert decoder.dtype == torch.float32 and decoder.data_ptr() != sae.W_dec.data_ptr()
    expected = sae.decode(torch.eye(10, dtype=torch.bfloat16)).float() - sae.b_dec.float()
    torch.testing.assert_close(decoder, expected)
    # and W_dec within bf16's rounding of W_dec + b_dec
    assert (decoder - sae.W_dec.float()).abs().max() <= 2**-8 * (sae.W_dec + sae.b_dec).abs().max()


def test_a_moved_point_moves_its_decoder_and_bias_with_the_sae():
    from circuitforge.feature_circuits.points import SAEPoint
    from circuitforge.sae.matching import MatchedSAE

    hook = "blocks.0.hook_resid_post"
    sae = plain_sae()
    point = SAEPoint(hook, 0, "resid", 1.0, MatchedSAE(sae, hook, hook), *affine_decoder(sae))
    point.to("meta")
    assert point.decoder.device.type == "meta" and sae.W_dec.device.type == "meta"
    assert point.decoder_bias.device.type == "meta"
    assert point.decoder.shape == sae.W_dec.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_affine_decoder_refuses_a_decoder_that_is_not_affine(dtype):
    sae = plain_sae(dtype=dtype)
    plain = sae.decode
    sae.decode = lambda f: torch.tanh(plain(f))  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="not affine"):
        affine_decoder(sae)

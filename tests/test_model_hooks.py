"""The hook-name vocabulary (`circuitforge.model.hooks`) against TransformerLens' own names."""

import pytest
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuitforge.model import hooks

PER_LAYER = [
    hooks.resid_pre, hooks.resid_mid, hooks.resid_post, hooks.attn_q, hooks.attn_k,
    hooks.attn_v, hooks.attn_z, hooks.attn_pattern, hooks.attn_result, hooks.ln1_post_scale,
    hooks.attn_out, hooks.q_input, hooks.k_input, hooks.v_input, hooks.mlp_in, hooks.mlp_pre,
    hooks.mlp_pre_linear, hooks.mlp_post, hooks.mlp_out,
]  # fmt: skip


def test_names_spelled_out():
    """The literal names are the independent check here."""
    assert hooks.resid_pre(3) == "blocks.3.hook_resid_pre"
    assert hooks.resid_post(0) == "blocks.0.hook_resid_post"
    assert hooks.mlp_post(2) == "blocks.2.mlp.hook_post"
    assert hooks.attn_z(1) == "blocks.1.attn.hook_z"
    assert hooks.qkv_input(4, "k") == "blocks.4.hook_k_input"
    assert hooks.attn_qkv(1, "v") == "blocks.1.attn.hook_v"
    assert hooks.ln1_post_scale(5) == "blocks.5.ln1_post.hook_scale"
    assert hooks.block(2, "attn.W_O") == "blocks.2.attn.W_O"
    with pytest.raises(ValueError, match="channel"):
        hooks.qkv_input(0, "o")


def test_every_name_is_a_hook_of_a_model_with_every_hook_on():
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=16, d_head=4, n_heads=4, d_mlp=32, d_vocab=20, n_ctx=8,
        act_fn="gelu", normalization_type="RMS", use_normalization_before_and_after=True,
        gated_mlp=True, use_split_qkv_input=True, use_attn_result=True, use_hook_mlp_in=True,
        n_key_value_heads=2, ungroup_grouped_query_attention=True,
    )  # fmt: skip
    names = set(HookedTransformer(cfg).hook_dict)
    for layer in range(cfg.n_layers):
        for name_of in PER_LAYER:
            assert name_of(layer) in names, name_of.__name__
    assert {hooks.EMBED, hooks.POS_EMBED, hooks.FINAL_NORM_SCALE} <= names


def test_parse_hook_reads_every_name_back():
    for name_of in PER_LAYER:
        parsed = hooks.parse_hook(name_of(7))
        assert parsed is not None and parsed.layer == 7 and parsed.name == name_of(7)
    assert hooks.parse_hook(hooks.mlp_post(12)) == hooks.BlockHook(12, "mlp.hook_post")
    for other in (hooks.EMBED, hooks.FINAL_NORM_SCALE, "blocks.x.hook_resid_pre", "blocks.1."):
        assert hooks.parse_hook(other) is None

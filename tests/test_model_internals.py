"""The TransformerLens internals graph code reads (`circuitforge.model.internals`), against what
the model itself computes and hooks."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuitforge.model import hooks, internals

FLAGS = (
    "use_split_qkv_input",
    "ungroup_grouped_query_attention",
    "use_attn_result",
    "use_hook_mlp_in",
)


def tiny(post_norm: bool, attn_only: bool = False, seed: int = 0) -> HookedTransformer:
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=16, d_head=4, n_heads=4, d_mlp=32, d_vocab=30, n_ctx=8,
        act_fn="gelu", normalization_type="RMS" if post_norm else "LN",
        use_normalization_before_and_after=post_norm, attn_only=attn_only, seed=seed,
    )  # fmt: skip
    model = HookedTransformer(cfg)
    for name, p in model.named_parameters():  # random biases and norm weights too (not 0 / 1)
        if name.endswith(("b_O", ".w")):
            p.data = torch.randn_like(p) * 0.5 + (1.0 if name.endswith(".w") else 0.0)
    return model


@pytest.mark.parametrize("post_norm", [False, True])
def test_head_outputs_sum_to_the_attention_output(post_norm):
    """Each head's share (post-norm: of the normalised sum) adds up to `hook_attn_out`; without
    the post-norm, `b_O` is the rest."""
    model = tiny(post_norm)
    tokens = torch.randint(0, 30, (2, 6))
    _, cache = model.run_with_cache(tokens)
    assert internals.has_post_attention_norm(model) == post_norm
    for layer in range(2):
        scale = cache[hooks.ln1_post_scale(layer)] if post_norm else None
        heads = internals.head_outputs(model, layer, cache[hooks.attn_z(layer)], scale)
        total = heads.sum(2)
        if not post_norm:
            total = total + internals.attention_bias(model, layer)
        torch.testing.assert_close(total, cache[hooks.attn_out(layer)], atol=1e-5, rtol=1e-5)


def test_head_outputs_equal_the_models_own_per_head_results():
    model = tiny(post_norm=False)
    tokens = torch.randint(0, 30, (2, 6))
    with internals.edge_hook_points(model, attn_result=True):
        _, cache = model.run_with_cache(tokens)
    for layer in range(2):
        ours = internals.head_outputs(model, layer, cache[hooks.attn_z(layer)], None)
        torch.testing.assert_close(ours, cache[hooks.attn_result(layer)], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn_only", [False, True])
def test_hook_flags_are_on_inside_and_restored_after(attn_only):
    model = tiny(post_norm=False, attn_only=attn_only)
    before = {name: getattr(model.cfg, name) for name in FLAGS}
    with pytest.raises(RuntimeError, match="inside"):
        with internals.edge_hook_points(model, attn_result=True):
            assert model.cfg.use_split_qkv_input and model.cfg.use_attn_result
            assert model.cfg.ungroup_grouped_query_attention
            assert model.cfg.use_hook_mlp_in == (not attn_only)
            raise RuntimeError("inside")
    assert {name: getattr(model.cfg, name) for name in FLAGS} == before
    with internals.ungrouped_heads(model, needed=True):
        assert model.cfg.ungroup_grouped_query_attention
    assert {name: getattr(model.cfg, name) for name in FLAGS} == before


def test_final_norm_pieces_rebuild_ln_final():
    """scale, weight and bias of the final norm give back `ln_final` (LayerNorm: centred)."""
    model = tiny(post_norm=False)
    x = torch.randn(3, 16)
    weight, bias = internals.final_norm_weights(model)
    assert internals.final_norm_centres(model) and weight is not None and bias is not None
    centred = x - x.mean(-1, keepdim=True)
    rebuilt = centred / internals.final_norm_scale(model, x) * weight + bias
    torch.testing.assert_close(rebuilt, model.ln_final(x[:, None])[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(internals.final_norm(model, x[:, None])[:, 0], rebuilt)

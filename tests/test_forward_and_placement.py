import pytest
import torch

from circuitforge.model import hooks
from circuitforge.model.forward import embed, forward_logits, new_kv_cache, run_blocks
from circuitforge.model.placement import DevicePlan, place_model, plan_of
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from lightning_modules.frozen_model_strategy import FrozenModelStrategy
from tests.conftest import fit_args
from train import main


def test_forward_logits_equal_transformer_lens(demo_model):
    tokens = demo_model.to_tokens(["A circle is a shape .", "The fox lived near the river ."])
    assert torch.allclose(forward_logits(demo_model, tokens), demo_model(tokens), atol=1e-5)


@pytest.mark.parametrize("start,stop", [(0, 4), (1, 4), (2, 3), (3, 4)])
def test_truncated_run_equals_the_full_run(demo_model, start, stop):
    tokens = demo_model.to_tokens("When Mary and John went to the store , John gave a drink to")
    _, cache = demo_model.run_with_cache(tokens)
    out = run_blocks(demo_model, cache[hooks.resid_pre(start)], start, stop)
    assert torch.equal(out, cache[hooks.resid_post(stop - 1)])


def test_kv_cached_decoding_equals_full_recomputation(demo_model):
    tokens = demo_model.to_tokens("A detailed description of x is that")
    cache = new_kv_cache(demo_model, 1)
    logits = forward_logits(demo_model, tokens, torch.ones_like(tokens), cache)
    seq = tokens
    for _ in range(4):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
        logits = forward_logits(demo_model, nxt, torch.ones_like(nxt), cache)
        full = demo_model(seq)[:, -1]
        assert torch.allclose(logits[:, -1], full, atol=1e-4)


SMALL_ROTARY = dict(
    n_layers=4, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=40, n_ctx=16,
    act_fn="gelu", normalization_type="RMS", positional_embedding_type="rotary",
)  # fmt: skip


def test_plan_splits_blocks_like_transformer_lens():
    plan = DevicePlan.split(26, ["cuda:0", "cuda:1"])
    assert [d.index for d in plan.blocks] == [0] * 13 + [1] * 13
    assert plan.device_of_layer(12) == torch.device("cuda:0")
    assert plan.output_device == torch.device("cuda:1")
    uneven = DevicePlan.split(5, ["cpu", "meta", "cuda:0"])
    assert [d.type for d in uneven.blocks] == ["cpu", "cpu", "meta", "meta", "cuda"]
    with pytest.raises(ValueError, match="cannot split"):
        DevicePlan.split(2, ["cpu", "cpu", "cpu"])


def test_placement_on_a_two_device_cpu_plan_keeps_logits():
    cfg = SMALL_ROTARY
    model = load_frozen_model(FrozenModelSpec(config=cfg))
    tokens = torch.randint(0, 40, (2, 9))
    before = model(tokens)
    place_model(model, DevicePlan.split(4, ["cpu", "cpu"]))
    assert plan_of(model).blocks == (torch.device("cpu"),) * 4
    residual, _ = embed(model, tokens)
    assert torch.allclose(forward_logits(model, tokens), before, atol=1e-6)
    assert run_blocks(model, residual, 0, 2).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_split_over_gpu_and_cpu_gives_the_same_logits():
    cfg = SMALL_ROTARY
    model = load_frozen_model(FrozenModelSpec(config=cfg, seed=5))
    tokens = torch.randint(0, 40, (2, 9))
    before = model(tokens)
    place_model(model, DevicePlan.split(4, ["cuda:0", "cpu"]))
    assert next(model.blocks[0].parameters()).is_cuda
    assert not next(model.blocks[3].parameters()).is_cuda
    assert torch.allclose(forward_logits(model, tokens).cpu(), before, atol=1e-4)


def test_strategy_places_the_model_on_its_plan_and_x_beside_the_injection_layer(tmp_path):
    cli = main(fit_args(tmp_path, "--trainer.strategy.init_args.devices=[cpu,cpu]", steps=2))
    strategy = cli.trainer.strategy
    assert isinstance(strategy, FrozenModelStrategy)
    plan = strategy.plan
    assert plan is not None and len(plan.blocks) == 4
    assert plan_of(cli.model.frozen_model) == plan
    assert cli.model.X.device == plan.device_of_layer(cli.model.injection_layer)


def test_gated_mlps_without_copies_equal_transformer_lens_and_keep_their_hooks(demo_model):
    """Our loaded models replace GatedMLP.forward (no weight copies): the same outputs as
    TransformerLens's own forward, and the MLP hooks still fire (and can patch)."""
    from transformer_lens.components.mlps.gated_mlp import GatedMLP

    mlp = demo_model.blocks[1].mlp
    assert type(mlp) is GatedMLP and "forward" in vars(mlp)  # replaced on this instance
    x = torch.randn(2, 5, demo_model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mlp(x), GatedMLP.forward(mlp, x), rtol=1e-5, atol=1e-5)
    tokens = torch.tensor([[1, 5, 9, 12]])
    _, cache = demo_model.run_with_cache(tokens, names_filter=lambda n: "mlp.hook_" in n)
    assert {hooks.mlp_pre(1), hooks.mlp_pre_linear(1), hooks.mlp_post(1)} <= set(cache.keys())
    zeroed = demo_model.run_with_hooks(
        tokens, fwd_hooks=[(hooks.mlp_post(1), lambda a, hook: a * 0)]
    )
    assert not torch.allclose(zeroed, demo_model(tokens))

"""The causal atlas sweep's speed-ups give what the slow paths give (issue 26's speed goal).

- `NeuronObjective(cached_prefix=True)`: the placeholder's position alone over cached keys and
  values equals the neuron read by a hook in a plain full forward with X injected, for B rows
  at once and for each row alone, and so do the gradients;
- `patchscope_decode(combined_unembed=True)`: the contrastive logits in one unembedding give
  the tokens of a decoding without KV cache (`tests/test_generation.py`'s brute force);
- `forward.autocast_weight`: under bf16 autocast the kept cast gives autocast's own product,
  is cast once, and is cast again after an in-place change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from circuitforge.model.forward import autocast_weight, contrastive_unembed, greedy_tokens, unembed
from circuitforge.model.hooks import mlp_post, resid_pre
from circuitforge.model.local_dir import load_model_dir
from circuitforge.model.spec import freeze
from circuitforge.patchscope.generation import patchscope_decode
from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.prompt import locate_placeholder
from tests.test_generation import brute_force_decode

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo" / "model"
PROMPTS = ["A detailed description of a x is that", "We say that a x", "x is"]


def hooked_activation(model, prompt, source, target, vector):
    """The whole model run on the prompt, X put at the placeholder by a hook at the source
    layer, every neuron of the target layer read at the placeholder by another hook."""
    seen = {}

    def inject(resid, hook):
        resid = resid.clone()
        resid[:, prompt.position] = vector
        return resid

    def read(post, hook):
        seen["post"] = post[0, prompt.position]

    model.run_with_hooks(
        prompt.tokens, fwd_hooks=[(resid_pre(source), inject), (mlp_post(target), read)]
    )
    return seen["post"]


@pytest.mark.parametrize("text", PROMPTS)
@pytest.mark.parametrize(("source", "target"), [(0, 3), (1, 2), (2, 2)])
def test_cached_prefix_equals_the_hooked_full_forward(demo_model, text, source, target):
    prompt = locate_placeholder(demo_model, text)
    fast = NeuronObjective(demo_model, prompt, source, target, cached_prefix=True)
    g = torch.Generator().manual_seed(source * 10 + target)
    vectors = torch.randn(5, demo_model.cfg.d_model, generator=g) * 4
    together = fast.layer_activations(vectors)
    for i, v in enumerate(vectors):
        expected = hooked_activation(demo_model, prompt, source, target, v)
        scale = expected.abs().max()
        assert (together[i] - expected).abs().max() <= 1e-5 * scale
        alone = fast.layer_activations(v[None])[0]  # one row: the same as in the batch
        assert (alone - expected).abs().max() <= 1e-5 * scale


def test_cached_prefix_gives_the_same_gradient(demo_model):
    prompt = locate_placeholder(demo_model, PROMPTS[0])
    slow = NeuronObjective(demo_model, prompt, 1, 3)
    fast = NeuronObjective(demo_model, prompt, 1, 3, cached_prefix=True)
    neurons = torch.tensor([3, 9, 400])
    grads = []
    for objective in (slow, fast):
        x = (torch.randn(3, 128, generator=torch.Generator().manual_seed(1)) * 4).requires_grad_()
        objective(x, neurons).sum().backward()
        grads.append(x.grad)
    assert (grads[0] - grads[1]).abs().max() <= 1e-5 * grads[0].abs().max()
    assert grads[0].abs().max() > 0


@pytest.fixture(scope="module")
def uncapped_model():
    """The demo model without its logit softcap (30): contrastive logits are affine there."""
    model = freeze(load_model_dir(DEMO))
    model.cfg.output_logits_soft_cap = -1.0
    return model


def test_combined_unembed_decodes_what_the_brute_force_decodes(uncapped_model):
    model = uncapped_model
    prompt = locate_placeholder(model, "A detailed description of x is that")
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(3, 128, generator=g) * 8
    baseline = torch.randn(128, generator=g)
    got = patchscope_decode(
        model, prompt, 1, vectors, baseline, 3, [7, 9, 11], alpha=1.5, new_tokens=6,
        combined_unembed=True,
    )  # fmt: skip
    for i in range(3):
        for contrastive, tokens in ((True, got.contrastive_tokens), (False, got.plain_tokens)):
            expected = brute_force_decode(
                model, prompt, 1, vectors[i], baseline, 1.5, 6, contrastive
            )
            assert tokens[i] == expected


@pytest.mark.parametrize("softcap", [-1.0, 30.0])
def test_contrastive_unembed_is_the_mix_of_the_two_logits(uncapped_model, softcap):
    model = uncapped_model
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 4, 1, 128, generator=g) * 10
    model.cfg.output_logits_soft_cap = softcap
    try:
        expected = 2.5 * unembed(model, a) - 1.5 * unembed(model, b)
        got = contrastive_unembed(model, a, b, 1.5)
    finally:
        model.cfg.output_logits_soft_cap = -1.0
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_autocast_weight_is_autocasts_product_cast_once():
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(6, 64, generator=g), torch.randn(64, 32, generator=g)
    kept: dict = {}
    assert autocast_weight(w, kept) is w  # no autocast: the weight itself
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = autocast_weight(w, kept)
        assert first.dtype == torch.bfloat16 and autocast_weight(w, kept) is first
        assert torch.equal(torch.matmul(x, first), torch.matmul(x, w))  # autocast's own cast
        w.mul_(2)  # changed in place: cast again
        again = autocast_weight(w, kept)
        assert again is not first and torch.equal(again, w.to(torch.bfloat16))
        assert len(kept) == 1


def test_the_frozen_models_forward_under_autocast_is_unchanged_by_kept_casts(demo_model):
    """The patched MLP and unembedding under bf16 autocast give the same logits as the same
    products with autocast casting the weights itself at every call."""
    tokens = torch.randint(0, demo_model.cfg.d_vocab, (2, 7), generator=torch.Generator())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = demo_model(tokens)
        residual = demo_model(tokens, stop_at_layer=demo_model.cfg.n_layers)
        unembedded = (
            torch.matmul(demo_model.ln_final(residual), demo_model.unembed.W_U)
            + demo_model.unembed.b_U
        )
    capped = demo_model.cfg.output_logits_soft_cap
    expected = capped * torch.tanh(unembedded.float() / capped) if capped > 0 else unembedded
    assert torch.equal(kept.float(), expected.float())


@pytest.mark.parametrize("softcap", [-1.0, 30.0])
@pytest.mark.parametrize("bias", [-1.0, 0.5])  # -1: no bias (Gemma's case)
def test_greedy_tokens_are_the_argmax_of_the_logits(uncapped_model, softcap, bias):
    model = uncapped_model
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(2, 16, 128, generator=g) * 10
    model.cfg.output_logits_soft_cap = softcap
    original = model.unembed.b_U.data.clone()
    if bias < 0:
        model.unembed.b_U.data.zero_()
    else:
        model.unembed.b_U.data += bias * torch.randn(model.cfg.d_vocab, generator=g)
    try:
        plain = unembed(model, a[:, None])[:, 0].argmax(-1)
        mixed = (2.5 * unembed(model, a[:, None]) - 1.5 * unembed(model, b[:, None]))[:, 0]
        assert torch.equal(greedy_tokens(model, a), plain)
        assert torch.equal(greedy_tokens(model, a, b, 1.5), mixed.argmax(-1))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the kept cast: autocast's tokens
            expected = unembed(model, a[:, None])[:, 0].float().argmax(-1)
            assert torch.equal(greedy_tokens(model, a), expected)
    finally:
        model.cfg.output_logits_soft_cap = -1.0
        model.unembed.b_U.data.copy_(original)

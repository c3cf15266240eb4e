"""Direct logit attribution, the logit lens and the circuit comparison against independent
computations: plain TransformerLens runs with caches, and brute force."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from circuitforge.analysis.compare import (
    compare_heads,
    head_effects,
    position_labels,
    read_circuit_heads,
)
from circuitforge.analysis.direct_logit import direct_logit_attribution
from circuitforge.analysis.logit_lens import logit_lens
from circuitforge.edges.objectives import last_read_position
from circuitforge.model import hooks
from tests.analysis_models import BATCHES, MODELS, demo

DIRECTIONS = ("denoising", "noising")


# ---------------------------------------------------------------------------------------------
# 3. direct logit attribution


def read_at(act, read):
    return act[torch.arange(act.shape[0]), last_read_position(read)]


def independent_share(model, vector, scale, direction):
    """A residual piece [batch, d] read through the frozen final norm: (centre) / scale * w."""
    if model.cfg.normalization_type == "LN":
        vector = vector - vector.mean(-1, keepdim=True)
    return ((vector / scale * model.ln_final.w) * direction).sum(-1)


@pytest.mark.parametrize("target", ["logit_difference", "answer"])
@pytest.mark.parametrize("model_name", ["demo", "ln"])
def test_direct_logit_attribution(model_name, target):
    model, batch = MODELS[model_name](), BATCHES[model_name]()
    found = direct_logit_attribution(model, batch, target)
    n, cfg = len(batch.clean), model.cfg
    rows = torch.arange(n)
    sign = [1.0, -1.0] if target == "logit_difference" else [1.0]
    columns = torch.stack([batch.answer, batch.wrong_answer], 1)[:, : len(sign)]
    sign = torch.tensor(sign)

    with torch.no_grad():
        logits, c = model.run_with_cache(batch.clean)
    final = read_at(c[hooks.resid_post(cfg.n_layers - 1)], batch.read)
    uncapped = model.unembed(model.ln_final(final[:, None]))[:, 0]  # no soft-cap here
    before = (uncapped[rows[:, None], columns] * sign).sum(-1)
    capped = (read_at(logits, batch.read)[rows[:, None], columns] * sign).sum(-1)

    assert found.shares.shape == (n, len(found.names))
    assert_close(found.shares.sum(-1) + found.constant, found.before_softcap)
    assert_close(found.before_softcap, before, atol=1e-4, rtol=1e-4)
    assert_close(found.model_value, capped, atol=1e-4, rtol=1e-4)
    if cfg.output_logits_soft_cap > 0:  # the cap matters on these pairs: the two differ
        cap = cfg.output_logits_soft_cap
        capped_by_hand = (cap * torch.tanh(uncapped / cap))[rows[:, None], columns]
        assert_close(found.model_value, (capped_by_hand * sign).sum(-1), atol=1e-4, rtol=1e-4)
        assert (found.model_value - found.before_softcap).abs().max() > 1e-2

    # each piece, read independently through the frozen final norm
    direction = (model.W_U[:, columns] * sign).sum(-1).T  # [batch, d_model]
    scale = read_at(c["ln_final.hook_scale"], batch.read)

    def of(name):
        return found.shares[:, found.names.index(name)]

    def expect(vector):
        return independent_share(model, vector, scale, direction)

    embed = read_at(c[hooks.resid_pre(0)], batch.read)
    if cfg.positional_embedding_type == "standard":
        assert "pos_embed" in found.names
        pos = read_at(c["hook_pos_embed"], batch.read)
        assert_close(of("pos_embed"), expect(pos), atol=1e-4, rtol=1e-4)
        embed = read_at(c["hook_embed"], batch.read)
    else:
        assert "pos_embed" not in found.names
    assert_close(of("embed"), expect(embed), atol=1e-4, rtol=1e-4)
    for layer in range(cfg.n_layers):
        heads = [f"{layer}.{h}" for h in range(cfg.n_heads)]
        parts = heads + ([] if cfg.use_normalization_before_and_after else [f"{layer}.attn_bias"])
        assert all(p in found.names for p in parts)
        attn_out = read_at(c[hooks.attn_out(layer)], batch.read)
        assert_close(sum(of(p) for p in parts), expect(attn_out), atol=1e-4, rtol=1e-4)
        mlp_out = read_at(c[hooks.mlp_out(layer)], batch.read)
        assert_close(of(f"m{layer}"), expect(mlp_out), atol=1e-4, rtol=1e-4)
        if cfg.use_normalization_before_and_after:
            assert f"{layer}.attn_bias" not in found.names
        else:  # per head: z[:, read, h] @ W_O[h], and the bias alone
            z = read_at(c[hooks.attn_z(layer)], batch.read)
            for h in range(cfg.n_heads):
                out = z[:, h] @ model.blocks[layer].attn.W_O[h]
                assert_close(of(f"{layer}.{h}"), expect(out), atol=1e-4, rtol=1e-4)
            bias = model.blocks[layer].attn.b_O.expand(n, -1)
            assert_close(of(f"{layer}.attn_bias"), expect(bias), atol=1e-4, rtol=1e-4)
    assert len(found.names) == len(set(found.names))


def test_direct_logit_attribution_bad_target():
    with pytest.raises(ValueError, match="target must be"):
        direct_logit_attribution(demo(), BATCHES["demo"](), "foo")  # pyright: ignore[reportArgumentType]  # the bad value under test


# ---------------------------------------------------------------------------------------------
# 4. logit lens


@pytest.mark.parametrize("model_name", ["demo", "ln"])
def test_logit_lens(model_name):
    model, batch = MODELS[model_name](), BATCHES[model_name]()
    lens = logit_lens(model, batch.clean, batch.read)
    n_layers, n = model.cfg.n_layers, len(batch.clean)
    assert lens.stages == ["embed"] + [f"after {L}" for L in range(n_layers)]
    assert lens.log_probs.shape == (n_layers + 1, n, model.cfg.d_vocab_out)
    with torch.no_grad():
        logits, c = model.run_with_cache(batch.clean)
    own = read_at(logits, batch.read).log_softmax(-1)
    assert_close(lens.log_probs[-1], own, atol=1e-4, rtol=1e-4)
    # a middle stage: that residual through final norm, unembedding, soft-cap
    resid = read_at(c[hooks.resid_post(0)], batch.read)
    logits1 = model.unembed(model.ln_final(resid[:, None]))[:, 0]
    if model.cfg.output_logits_soft_cap > 0:
        cap = model.cfg.output_logits_soft_cap
        logits1 = cap * torch.tanh(logits1 / cap)
    assert_close(lens.log_probs[1], logits1.log_softmax(-1), atol=1e-4, rtol=1e-4)
    assert_close(lens.log_probs.exp().sum(-1), torch.ones(n_layers + 1, n))

    answer = batch.answer
    order = lens.log_probs.argsort(-1, descending=True)  # brute force
    ranks = (order == answer[None, :, None]).float().argmax(-1)
    assert torch.equal(lens.ranks(answer), ranks)
    probabilities = lens.probabilities(answer)
    for s in range(n_layers + 1):
        for i in range(n):
            assert probabilities[s, i].item() == pytest.approx(
                lens.log_probs[s, i, answer[i]].exp().item()
            )
    values, ids = lens.top_k(5)
    assert torch.equal(ids, order[..., :5])
    assert_close(values, lens.log_probs.gather(-1, order[..., :5]).exp())
    assert (values[..., :-1] >= values[..., 1:]).all()
    assert_close(values[..., 0], lens.log_probs.max(-1).values.exp())


# ---------------------------------------------------------------------------------------------
# 5. the comparison with an edge circuit


def test_head_effects():
    den = np.array([[0.1, -0.6], [0.0, 0.3]])
    noi = np.array([[0.8, 1.0], [0.5, 1.1]])
    np.testing.assert_allclose(head_effects(den, noi), [[0.2, 0.6], [0.5, 0.3]])
    np.testing.assert_allclose(head_effects(den, None), np.abs(den))
    np.testing.assert_allclose(head_effects(None, noi), [[0.2, 0.0], [0.5, 0.1]])
    with pytest.raises(ValueError, match="no head sweep"):
        head_effects(None, None)


def test_compare_heads_recall_and_precision():
    effects = np.array([[0.9, 0.01, 0.2], [0.05, 0.5, 0.0]])
    circuit = {"0.0", "1.1", "1.2", "0.1"}
    found = compare_heads(effects, circuit, threshold=0.1, top=4)
    # matter (>= 0.1): 0.0 (0.9), 1.1 (0.5), 0.2 (0.2)
    assert found["heads_that_matter"] == ["0.0", "1.1", "0.2"]
    assert found["heads_in_circuit"] == ["0.0", "0.1", "1.1", "1.2"]
    assert found["in_both"] == ["0.0", "1.1"]
    assert found["matter_but_not_in_circuit"] == ["0.2"]
    assert found["in_circuit_but_small_effect"] == ["0.1", "1.2"]
    assert found["recall"] == pytest.approx(2 / 3)
    assert found["precision"] == pytest.approx(2 / 4)
    assert found["threshold"] == 0.1
    assert [t["head"] for t in found["top_heads"]] == ["0.0", "1.1", "0.2", "1.0"]
    assert [t["in_circuit"] for t in found["top_heads"]] == [True, True, False, False]
    assert found["top_heads"][3]["effect"] == pytest.approx(0.05)
    nothing = compare_heads(effects, set(), threshold=2.0, top=2)
    assert nothing["recall"] is None and nothing["precision"] is None
    assert nothing["heads_that_matter"] == [] and len(nothing["top_heads"]) == 2
    json.dumps(found)  # the block goes into the results JSON


def test_position_labels():
    labels, aligned = position_labels(
        [["<bos>", "Then", " Ana", " and", " "], ["<bos>", "Then", " Bo", " and", " "]]
    )
    assert labels == ["0 <bos>", "1 Then", "2 Ana*", "3 and", "4 ' '"]
    assert aligned
    labels, aligned = position_labels([["<bos>", " a"], ["<bos>", " a", " b"]])
    assert labels == ["0 <bos>", "1 a", "2 b"] and not aligned
    labels, _ = position_labels([["<bos>", " a"], ["<bos>", " a", " b"], ["<bos>", " c", " d"]])
    assert labels == ["0 <bos>", "1 a*", "2 b*"]


def test_read_circuit_heads(tmp_path):
    first = tmp_path / "version_0" / "circuit.json"
    second = tmp_path / "version_1" / "circuit.json"
    for path, nodes in (
        (first, ["input", "0.1", "logits"]),
        (second, ["input", "0.2", "3.0", "m1", "logits", "12.10"]),
    ):
        path.parent.mkdir()
        path.write_text(json.dumps({"nodes": nodes}))
    os.utime(first, (time.time() + 10, time.time() + 10))  # version_0 is the newest
    found, heads = read_circuit_heads(str(second))
    assert found == second and heads == {"0.2", "3.0", "12.10"}
    found, heads = read_circuit_heads(str(tmp_path / "version_*" / "circuit.json"))
    assert found == first and heads == {"0.1"}
    missing = str(tmp_path / "nowhere" / "circuit.json")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_circuit_heads(missing)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_circuit_heads(str(tmp_path / "none_*" / "circuit.json"))
    (tmp_path / "other.json").write_text(json.dumps({"edges": []}))
    with pytest.raises(ValueError, match="no `nodes`"):
        read_circuit_heads(str(tmp_path / "other.json"))

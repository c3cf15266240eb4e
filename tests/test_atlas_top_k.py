"""The atlas's rank keys and streaming top-k against brute-force sorts (ties included)."""

import random

import pytest
import torch

from circuitforge.atlas.documents import collate_documents
from circuitforge.atlas.profile import NeuronProfile
from circuitforge.atlas.top_k import EMPTY, TopK, batch_top_k, compose, decompose


def brute_top_k(values, ids, counted, k):
    """Per unit: the k best (value, id) by value descending, then id ascending."""
    out = []
    for unit in range(values.shape[1]):
        rows = [(float(values[i, unit]), int(ids[i])) for i in range(len(ids)) if counted[i]]
        out.append(sorted(rows, key=lambda r: (-r[0], r[1]))[:k])
    return out


def as_lists(top: TopK):
    values, ids = top.values_and_ids()
    out = []
    for unit in range(top.keys.shape[1]):
        keep = top.keys[:, unit] != EMPTY
        out.append(list(zip(values[keep, unit].tolist(), ids[keep, unit].tolist())))
    return out


def test_rank_keys_sort_like_value_then_earliest_token():
    specials = [0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), 1e-38, -1e-38, 3.4e38]
    values = torch.tensor(specials + [random.Random(0).uniform(-5, 5) for _ in range(200)])
    values = torch.cat([values, values[:50]])  # exact ties, told apart by the token id
    ids = torch.randperm(len(values), generator=torch.Generator().manual_seed(0)) * 977
    keys = compose(values, ids)
    got = [(float(values[i]), int(ids[i])) for i in keys.argsort(descending=True)]
    # Python's order; -0.0 and 0.0 compare equal there, and the key puts +0.0 first
    want = sorted(zip(values.tolist(), ids.tolist()), key=lambda r: (-r[0], r[1]))
    assert [(v, i) for v, i in got if v != 0] == [(v, i) for v, i in want if v != 0]
    back_values, back_ids = decompose(keys)
    assert torch.equal(back_values, values) and torch.equal(back_ids, ids)


@pytest.mark.parametrize("k", [1, 3, 7, 40])
def test_batch_top_k_equals_a_sort_with_many_ties(k):
    g = torch.Generator().manual_seed(k)
    n, units = 30, 9
    values = torch.randint(-3, 4, (n, units), generator=g).float()  # few distinct values
    values[:, 0] = 2.0  # one unit where every token ties
    ids = torch.randperm(10_000, generator=g)[:n]
    counted = torch.rand(n, generator=g) > 0.2
    vocab = torch.arange(n) + 100
    top = batch_top_k(values[counted], ids[counted], vocab[counted], k)
    assert as_lists(top) == brute_top_k(values, ids, counted, k)
    want_vocab = {int(ids[i]): int(vocab[i]) for i in range(n)}
    for unit, found in enumerate(as_lists(top)):
        assert [int(t) for t in top.token[: len(found), unit]] == [want_vocab[i] for _, i in found]


def test_merging_shards_in_any_order_equals_the_whole():
    g = torch.Generator().manual_seed(1)
    n, units, k = 200, 6, 5
    values = torch.randint(0, 5, (n, units), generator=g).float()
    ids, vocab = torch.arange(n) * 3, torch.zeros(n, dtype=torch.long)
    whole = batch_top_k(values, ids, vocab, k)
    shards = torch.randperm(n, generator=g).chunk(7)
    merged = TopK.empty(k, units)
    for shard in reversed(shards):
        merged = merged.merged(batch_top_k(values[shard], ids[shard], vocab[shard], k))
    assert torch.equal(merged.keys, whole.keys)


def test_profile_statistics_and_padding():
    rows = [(4, [1, 5, 6, 7]), (9, [1, 8])]  # (document, token ids), right-padded with 0
    batch = collate_documents(rows, pad_id=0)
    acts = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3) - 10
    profile = NeuronProfile.empty(k=2, units=3)
    profile.update(acts, batch, stride=100, threshold=0.0, skip_bos=True)
    counted = [(0, 1), (0, 2), (0, 3), (1, 1)]  # no <bos>, no padding
    seen = torch.stack([acts[b, p] for b, p in counted])
    assert int(profile.n_tokens) == 4
    assert torch.allclose(profile.mean(), seen.double().mean(0))
    assert torch.equal(profile.active, (seen > 0).sum(0))
    values, ids = profile.top.values_and_ids()
    assert ids[:, 0].tolist() == [901, 403]  # document * stride + position
    assert values[:, 0].tolist() == [float(acts[1, 1, 0]), float(acts[0, 3, 0])]
    assert profile.top.token[:, 0].tolist() == [8, 7]


def test_nan_activations_are_refused():
    batch = collate_documents([(0, [1, 2, 3])], pad_id=0)
    acts = torch.zeros(1, 3, 2)
    acts[0, 2, 1] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN activations in documents \\[0\\]"):
        NeuronProfile.empty(3, 2).update(acts, batch, stride=8)

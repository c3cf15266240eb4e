import torch

from circuitforge.data.baseline import BaselineCache, compute_baseline, last_token_windows
from circuitforge.data.texts import load_texts
from circuitforge.model import hooks
from tests.conftest import DEMO_CORPUS


def test_left_padded_batch_equals_unpadded_documents_one_by_one(demo_model):
    texts = load_texts(str(DEMO_CORPUS), 6) + ["A circle"]  # a short one is padded
    layer, window = 2, 8
    got = compute_baseline(demo_model, texts, layer, window=window, batch_size=4)
    tokens, mask = last_token_windows(demo_model, texts, window, prepend_bos=False)
    assert mask[-1].sum() < window  # the short document really was padded
    rows = []
    for text in texts:  # independent: each document alone, no padding, plain TransformerLens
        ids = demo_model.to_tokens(text, prepend_bos=False)[:, -window:]
        _, cache = demo_model.run_with_cache(ids, names_filter=hooks.resid_pre(layer))
        rows.append(cache[hooks.resid_pre(layer)][0, -1])
    expected = torch.stack(rows)
    assert torch.allclose(got.mean, expected.mean(0), atol=1e-4)
    assert abs(got.typical_norm - float(expected.norm(dim=-1).mean())) < 1e-3


def test_cache_round_trip(tmp_path, demo_model):
    texts = load_texts(str(DEMO_CORPUS), 3)
    baseline = compute_baseline(demo_model, texts, 1, window=8)
    cache = BaselineCache(tmp_path)
    key = {"model": "m", "layer": 1}
    assert cache.load(key) is None
    cache.save(key, baseline)
    loaded = cache.load(key)
    assert torch.equal(loaded.mean, baseline.mean) and loaded.typical_norm == baseline.typical_norm
    assert cache.load({"model": "other", "layer": 1}) is None

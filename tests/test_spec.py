import time

import pytest

from circuitforge.hub import HubUnavailableError
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model


def test_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        FrozenModelSpec()
    with pytest.raises(ValueError, match="exactly one"):
        FrozenModelSpec(pretrained="gpt2", path="x")


def test_unknown_model_name_is_refused_at_once():
    with pytest.raises(ValueError, match="Unknown model name 'gemma-9-nonexistent'"):
        load_frozen_model(FrozenModelSpec(pretrained="gemma-9-nonexistent"))


def test_offline_pretrained_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="save_model_dir.py"):
        load_frozen_model(FrozenModelSpec(pretrained="gemma-2-2b", dtype="bfloat16"))
    assert time.perf_counter() - start < 10


def test_frozen_model_has_no_trainable_parameters(demo_model):
    assert not any(p.requires_grad for p in demo_model.parameters())
    assert not demo_model.training


def test_offline_dataset_fails_fast_with_instructions(monkeypatch):
    from circuitforge.data.texts import load_texts

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="local .txt"):
        load_texts("NeelNanda/pile-10k", 100)

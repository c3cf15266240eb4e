"""Prompt pairs: tokenisation with clear errors, the corruptions, the tracr batches."""

from __future__ import annotations

import json

import pytest
import torch

from circuitforge.tasks.demo_tasks import demo_greater_than_pairs, demo_ioi_pairs
from circuitforge.tasks.prompt_pairs import PromptPair, read_jsonl, tokenize_pairs
from circuitforge.tasks.tracr_task import length_batches, tracr_pairs
from tests.conftest import ROOT


def test_demo_ioi_pairs_tokenize_and_the_abc_corruption_repeats_no_name(demo_model):
    pairs = demo_ioi_pairs(32, seed=3)
    tensors = tokenize_pairs(demo_model, pairs)
    assert (tensors.clean != tensors.corrupt).any(1).all()
    for pair in pairs:
        names = [w for w in pair.corrupt.replace(",", "").split() if w[0].isupper()]
        names = [n for n in names if n not in ("Then", "After", "When", "While", "Afterwards")]
        assert len(names) == len(set(names)), pair.corrupt
        assert pair.answer.strip() in pair.clean and pair.wrong_answer.strip() in pair.clean


def test_demo_greater_than_pairs_tokenize(demo_model):
    tensors = tokenize_pairs(demo_model, demo_greater_than_pairs(16))
    assert tensors.read.sum(1).eq(1).all()


def test_different_lengths_and_multi_token_answers_are_refused(demo_model):
    with pytest.raises(ValueError, match="different lengths"):
        tokenize_pairs(demo_model, [PromptPair("Mary met John", "Mary met", " John", " Mary")])
    with pytest.raises(ValueError, match="not one token"):
        tokenize_pairs(demo_model, [PromptPair("Mary met John", "Anna met Tom", " the dog", " x")])


def test_jsonl_lines_are_read_and_bad_lines_named(tmp_path):
    good = {"clean": "a", "corrupt": "b", "answer": " c", "wrong_answer": " d"}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n")
    assert read_jsonl(path) == [PromptPair("a", "b", " c", " d")] * 2
    path.write_text(json.dumps(good) + '\n{"clean": "a"}\n')
    with pytest.raises(ValueError, match="pairs.jsonl:2"):
        read_jsonl(path)


def test_tracr_batches_never_mix_lengths_and_respect_unique_inputs():
    folder = ROOT / "tests/fixtures/tracr/sort_unique"
    pairs = tracr_pairs(folder, 64, seed=0)
    for batch in length_batches(pairs.read, 8, seed=1):
        assert len({int(pairs.read[i].sum()) for i in batch}) == 1
    for row, read in zip(pairs.clean, pairs.read):
        tokens = row[1 : int(read.sum()) + 1].tolist()
        assert len(tokens) == len(set(tokens))
    assert torch.equal(pairs.read[:, 0], torch.zeros(64, dtype=torch.bool))

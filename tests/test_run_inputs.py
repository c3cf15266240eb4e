"""Bad inputs a new user gives: each gets one message of ours, and no result is ever NaN."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from callbacks import PatchscopeGeneration
from circuitforge.data.baseline import compute_baseline
from circuitforge.data.texts import load_texts
from circuitforge.patchscope.baseline import CorpusBaseline, WordsBaseline
from circuitforge.results import NonFiniteResult, write_result
from datamodules import DocumentDataModule, PromptPairDataModule
from tests.conftest import DEMO_CORPUS, ROOT, edited_config, fit_args
from train import main


def test_a_constructor_error_is_ours_not_jsonargparse_wrapping(tmp_path):
    with pytest.raises(ValueError) as refused:
        main(fit_args(tmp_path, "--model.init_args.source_layer=9"))
    assert str(refused.value) == "source_layer 9 out of range: the model has 4 layers"


def test_the_command_line_shows_our_message_alone(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CIRCUITFORGE_TRACEBACK", None)
    args = fit_args(tmp_path, "--model.init_args.source_layer=9")
    ran = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 1
    assert "error: source_layer 9 out of range: the model has 4 layers\n" in ran.stderr
    for noise in ("Traceback", "Namespace(", "Union subtypes"):
        assert noise not in ran.stderr, ran.stderr[-2000:]


def test_null_on_the_command_line_is_none_not_the_string_none(tmp_path):
    with pytest.raises(ValueError, match="needs exactly one of pretrained, gguf, path, config"):
        main(fit_args(tmp_path, "--model.init_args.model.path=null"))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: CorpusBaseline(str(DEMO_CORPUS), batch_size=0), "baseline.batch_size"),
        (lambda: CorpusBaseline(str(DEMO_CORPUS), n_documents=0), "baseline.n_documents"),
        (lambda: CorpusBaseline(str(DEMO_CORPUS), window=0), "baseline.window"),
        (lambda: WordsBaseline(0), "baseline.words"),
        (lambda: DocumentDataModule(source=str(DEMO_CORPUS), batch_size=0), "batch_size"),
        (lambda: DocumentDataModule(source=str(DEMO_CORPUS), max_tokens=0), "max_tokens"),
        (lambda: PromptPairDataModule(batch_size=0), "batch_size"),
        (lambda: PromptPairDataModule(n_validation=0), "n_validation"),
    ],
)
def test_a_count_of_zero_is_refused_by_name(make, name):
    with pytest.raises(ValueError, match=f"{name} must be at least 1, got 0"):
        make()


def test_zero_steps_per_epoch_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="steps_per_epoch must be at least 1"):
        main(fit_args(tmp_path, steps=0))
    assert not (tmp_path / "runs").exists()


def test_a_malformed_corpus_line_is_named_by_path_and_line(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "one"}\n\n{"text": "two"}\n{"text": broken\n')
    with pytest.raises(ValueError, match=f"^{corpus}:4: not a JSON object"):
        load_texts(str(corpus))
    corpus.write_text('{"text": "one"}\n\n["a list"]\n')
    with pytest.raises(ValueError, match=f"^{corpus}:3 has no field 'text'"):
        load_texts(str(corpus))


def test_a_diverging_optimisation_stops_with_a_clear_error(tmp_path):
    with pytest.raises(FloatingPointError, match="step 1: the optimisation diverged.*x_norm"):
        main(fit_args(tmp_path, "--model.init_args.lr=1e20", epochs=2, steps=3))
    written = list((tmp_path / "runs").rglob("*.json"))
    for text in (path.read_text() for path in written):
        assert not any(c in text for c in ("NaN", "Infinity")), text


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_setting_is_refused(tmp_path, value):
    def nan_alpha(config):
        config["trainer"]["callbacks"][2]["init_args"]["alpha"] = value

    with pytest.raises(ValueError, match=r"finite numbers: trainer.callbacks\[2\].*alpha = "):
        main(["fit", "--config", str(edited_config(tmp_path, nan_alpha)), *fit_args(tmp_path)[3:]])
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        PatchscopeGeneration(alpha=value)  # built without the CLI


def test_results_are_strict_json(tmp_path):
    with pytest.raises(NonFiniteResult, match=r"history\[0\].sae.x_norm = inf"):
        write_result(tmp_path, "r", {"ok": 1.0}, [{"sae": {"x_norm": math.inf}}])
    assert not (tmp_path / "results" / "r.json").exists()


def test_an_edited_corpus_gives_its_own_baseline(tmp_path, demo_model):
    corpus = tmp_path / "corpus.jsonl"
    lines = DEMO_CORPUS.read_text().splitlines()
    corpus.write_text("\n".join(lines[:100]) + "\n")
    args = [f'--model.init_args.baseline={{"corpus": "{corpus}", "n_documents": 20}}']
    first = main(fit_args(tmp_path / "a", *args, epochs=1, steps=1)).model.baseline.clone()
    edited = [json.dumps({"text": json.loads(line)["text"] + " radius"}) for line in lines[:100]]
    corpus.write_text("\n".join(edited) + "\n")  # same path, other last tokens
    second = main(fit_args(tmp_path / "b", *args, epochs=1, steps=1)).model.baseline
    texts = load_texts(str(corpus), 20)
    expected = compute_baseline(demo_model, texts, 0, window=32).mean
    assert not torch.allclose(first, second)
    assert torch.allclose(second, expected, atol=1e-5)


def test_a_damaged_checkpoint_never_gets_torch_advice(tmp_path):
    garbage = Path(tmp_path / "garbage.ckpt")
    garbage.write_bytes(b"PK\x03\x04" + os.urandom(3000))
    with pytest.raises(ValueError) as refused:
        main(fit_args(tmp_path, f"--ckpt_path={garbage}"))
    assert "not a readable checkpoint" in str(refused.value)
    assert "weights_only" not in str(refused.value)

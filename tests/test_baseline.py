import pytest
import torch

from circuitforge.data.baseline import compute_baseline, last_token_windows
from circuitforge.data.texts import load_texts
from circuitforge.model import hooks
from circuitforge.patchscope.baseline import (
    CorpusBaseline,
    WordsBaseline,
    checked_baseline,
    placeholder_baseline,
)
from circuitforge.patchscope.prompt import locate_placeholder
from circuitforge.patchscope.word_residuals import vocabulary_words
from tests.conftest import DEMO_CORPUS, edited_config, fit_args
from train import main


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


def test_one_function_gives_both_baselines(demo_model):
    """`placeholder_baseline` (what the single run and the sweep call) against the pieces:
    the corpus mean of `compute_baseline`, the mean word of plain runs of the prompt."""
    prompt = locate_placeholder(demo_model, "We say that a x")
    corpus = placeholder_baseline(demo_model, CorpusBaseline(str(DEMO_CORPUS), 5, 8), prompt, 2)
    expected = compute_baseline(demo_model, load_texts(str(DEMO_CORPUS), 5), 2, window=8)
    assert torch.equal(corpus.mean, expected.mean)
    assert corpus.typical_norm == expected.typical_norm
    words = placeholder_baseline(demo_model, WordsBaseline(6), prompt, 2)
    rows = []
    for word in vocabulary_words(demo_model, 6).tolist():  # each word written into the prompt
        text = "We say that a " + demo_model.tokenizer.decode([word]).strip()
        _, cache = demo_model.run_with_cache(demo_model.to_tokens(text))
        rows.append(cache["blocks.2.hook_resid_pre"][0, prompt.position])
    table = torch.stack(rows)
    assert torch.allclose(words.mean, table.mean(0), atol=1e-5)
    assert words.typical_norm == pytest.approx(float(table.norm(dim=-1).mean()), rel=1e-5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model.init_args.baseline=words"], r"^baseline: words is now baseline: \{words: N\}"),
        (["--model.init_args.baseline=corpus"], r"^baseline: corpus is now baseline: \{corpus:"),
        (["--model.init_args.n_words=50"], r"^n_words is gone: use baseline: \{words: 50\}"),
        (["--model.init_args.init=mean"], r"^init: mean is now init: baseline"),
    ],
)
def test_the_old_spellings_are_refused_naming_the_new_one(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        main(fit_args(tmp_path, *extra))


def test_the_old_text_data_module_is_refused_naming_the_model_settings(tmp_path):
    def old(config):
        config["data"] = {"class_path": "datamodules.TextDataModule"}
        config["data"]["init_args"] = {"source": str(DEMO_CORPUS), "n_documents": 100}

    with pytest.raises(ValueError, match=r"^data: TextDataModule is gone: .*baseline: \{corpus"):
        main(fit_args(tmp_path, config=edited_config(tmp_path, old)))
    with pytest.raises(ValueError, match="n_words is gone"):  # the sweep's old spelling too
        checked_baseline(WordsBaseline(), n_words=300)

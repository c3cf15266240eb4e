"""The demo world's pieces: corpus splits, tokenizer, packing, evaluation against plain loops."""

import re

import torch

from circuitforge.data.padding import right_padded
from circuitforge.data.texts import load_texts
from circuitforge.data.top_contexts import top_contexts
from circuitforge.demo_world.corpus import (
    IOI_TEMPLATES,
    N_HELDOUT_NAMES,
    NAMES,
    PATCHSCOPE_PROMPT,
    generate_corpus,
    greater_than_prompts,
    ioi_prompts,
)
from circuitforge.demo_world.evaluation import (
    greater_than_accuracy,
    ioi_accuracy,
    loss_per_topic,
)
from circuitforge.demo_world.tokenizer import SPECIAL_TOKENS, train_word_tokenizer
from circuitforge.model import hooks
from circuitforge.model.local_dir import load_tokenizer
from datamodules.demo_corpus import document_rows
from tests.conftest import DEMO_CORPUS, DEMO_MODEL


def test_corpus_is_a_function_of_its_seed():
    assert generate_corpus(200, 5, seed=3) == generate_corpus(200, 5, seed=3)
    assert generate_corpus(200, 5, seed=3) != generate_corpus(200, 5, seed=4)


def _template_regex(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for field in ("A", "B", "place", "thing"):
        pattern = pattern.replace(re.escape("{" + field + "}"), r"\w+")
    return re.compile(pattern)


def test_heldout_names_and_templates_never_occur_in_training_ioi():
    docs = generate_corpus(3000, 50, seed=0)
    heldout_names = set(NAMES[-N_HELDOUT_NAMES:])
    heldout_templates = [_template_regex(t) for t in IOI_TEMPLATES[-3:]]
    train_ioi = [d.text for d in docs if d.topic == "ioi" and d.split == "train"]
    assert len(train_ioi) > 300
    for text in train_ioi:
        assert not heldout_names & set(re.findall(r"\w+", text)), text
        assert not any(t.fullmatch(text) for t in heldout_templates), text
    # ... but the held-out names are trained elsewhere, and the held-out prompts use them
    other_words = {w for d in docs if d.topic != "ioi" for w in re.findall(r"\w+", d.text)}
    assert heldout_names <= other_words
    for p in ioi_prompts(50, seed=1):
        assert {p.answer.strip(), p.wrong.strip()} <= heldout_names
        assert p.template >= len(IOI_TEMPLATES) - 3
        assert p.prompt.count(p.wrong.strip()) == 2 and p.prompt.count(p.answer.strip()) == 1


def test_tokenizer_round_trips_placeholder_prompts_and_keeps_specials_single(tmp_path):
    docs = generate_corpus(500, 5, seed=0)
    backend = train_word_tokenizer([d.text for d in docs], PATCHSCOPE_PROMPT.split())
    backend.save(str(tmp_path / "tokenizer.json"))
    for tokenizer in (load_tokenizer(tmp_path / "tokenizer.json"), _shipped_tokenizer()):
        vocab = tokenizer.get_vocab()
        for special in SPECIAL_TOKENS:
            assert tokenizer(special, add_special_tokens=False)["input_ids"] == [vocab[special]]
        for prompt in [PATCHSCOPE_PROMPT, "A detailed description of a circle is that"]:
            ids = tokenizer(prompt)["input_ids"]
            assert ids[0] == vocab["<bos>"]
            assert vocab["<unk>"] not in ids
            assert tokenizer.decode(ids, skip_special_tokens=True) == prompt
        assert tokenizer(" x", add_special_tokens=False)["input_ids"] == [vocab["x"]]
        ids = tokenizer("the year 1732.", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids) == ["the", "year", "17", "32", "."]


def _shipped_tokenizer():
    return load_tokenizer(DEMO_MODEL / "tokenizer.json")


def test_document_rows_are_bos_text_eos_right_padded():
    rows = document_rows([[5] * 3, [6] * 10, [7] * 20], bos=1, eos=2, context=16)
    batch = right_padded(rows, pad=0)
    assert batch.shape == (3, 16)
    assert batch[0].tolist() == [1, 5, 5, 5, 2] + [0] * 11
    assert batch[1].tolist() == [1] + [6] * 10 + [2] + [0] * 4
    assert batch[2].tolist() == [1] + [7] * 15  # cut to the context


def test_loss_per_topic_matches_a_loop_of_plain_forwards(demo_model):
    docs = generate_corpus(0, 2, seed=5)
    got = loss_per_topic(demo_model, docs, batch_size=5)
    for topic in {d.topic for d in docs}:
        total, count = 0.0, 0
        for d in docs:
            if d.topic == topic:
                tokens = demo_model.to_tokens(d.text)
                loss = demo_model(tokens, return_type="loss")
                total += float(loss) * (tokens.shape[1] - 1)
                count += tokens.shape[1] - 1
        assert abs(got[topic] - total / count) < 1e-4


def test_ioi_and_greater_than_metrics_match_a_loop(demo_model):
    prompts = ioi_prompts(12, seed=2)
    got = ioi_accuracy(demo_model, prompts)
    wins = []
    for p in prompts:
        logits = demo_model(demo_model.to_tokens(p.prompt))[0, -1]
        wins.append(
            logits[demo_model.to_single_token(p.answer)]
            > logits[demo_model.to_single_token(p.wrong)]
        )
    assert got["accuracy"] == torch.tensor(wins).float().mean().item()

    gt = greater_than_prompts(12, seed=2)
    got = greater_than_accuracy(demo_model, gt)
    correct = []
    for p in gt:
        logits = demo_model(demo_model.to_tokens(p.prompt))[0, -1]
        years = [logits[demo_model.to_single_token(f"{yy:02d}")] for yy in range(100)]
        correct.append(int(torch.stack(years).argmax()) > p.start_yy)
    assert got["accuracy"] == sum(correct) / len(correct)


def test_top_contexts_match_a_brute_force_sort(demo_model):
    texts = load_texts(str(DEMO_CORPUS), 40)
    hook = hooks.mlp_post(1)
    found = top_contexts(demo_model, texts, hook, lambda a: a[..., [3, 77]], k=5, batch_size=7)
    for unit, neuron in enumerate([3, 77]):
        everything = []
        for d, text in enumerate(texts):
            tokens = demo_model.to_tokens(text)
            _, cache = demo_model.run_with_cache(tokens, names_filter=hook)
            for pos in range(1, tokens.shape[1]):  # <bos> is never counted
                everything.append((float(cache[hook][0, pos, neuron]), d, pos))
        everything.sort(reverse=True)
        got = [(c.document, c.position) for c in found[unit]]
        assert got == [(d, p) for _, d, p in everything[:5]]
        for c, (value, d, p) in zip(found[unit], everything):
            assert abs(c.activation - value) < 1e-4
            assert c.token == demo_model.to_string(demo_model.to_tokens(texts[d])[0, p])

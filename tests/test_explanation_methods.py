"""The explanation methods of issue 26 (M4 VocabProj, M5 TokenChange, M6 EPO), each against an
independent computation on the demo model (circuitforge/explanations/methods/)."""

from __future__ import annotations

import pytest
import torch

from circuitforge.data.texts import load_texts
from circuitforge.explanations.methods import METHODS
from circuitforge.explanations.methods.common import allowed_tokens, word_list
from circuitforge.explanations.methods.epo import optimise_prompt
from circuitforge.explanations.methods.token_change import token_change
from circuitforge.explanations.methods.vocab_proj import vocab_projection
from circuitforge.model.tokenizer import encode
from tests.conftest import DEMO_CORPUS

LAYER = 2
NEURONS = [0, 5, 100, 511]


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean() + eps) * w


def test_vocab_proj_equals_a_loop_over_the_vocabulary_with_both_norms(demo_model):
    model = demo_model
    assert model.cfg.use_normalization_before_and_after and model.cfg.normalization_type == "RMS"
    got = vocab_projection(model, LAYER, NEURONS)
    block = model.blocks[LAYER]
    for row, n in zip(got, NEURONS):
        v = model.blocks[LAYER].mlp.W_out[n].detach()
        v = rms_norm(v, block.ln2_post.w.detach(), model.cfg.eps)  # the post-MLP norm (Gemma)
        v = rms_norm(v, model.ln_final.w.detach(), model.cfg.eps)  # the final norm
        W_U = model.W_U.detach()
        expected = torch.tensor([float(v @ W_U[:, t]) for t in range(model.cfg.d_vocab)])
        torch.testing.assert_close(row, expected, rtol=1e-4, atol=1e-4)
    texts = METHODS["vocab_proj"](model, LAYER, NEURONS, max_tokens=6)
    allowed = allowed_tokens(model)
    for text, n in zip(texts, NEURONS):
        v = rms_norm(model.blocks[LAYER].mlp.W_out[n].detach(), block.ln2_post.w, model.cfg.eps)
        logits = rms_norm(v, model.ln_final.w, model.cfg.eps).detach() @ model.W_U.detach()
        order = logits.masked_fill(~allowed, float("-inf")).argsort(descending=True)
        assert text == word_list(model, order[:50].tolist(), 6)
        assert text.split()[0] == model.tokenizer.decode([int(order[0])]).strip()


def test_token_change_equals_a_plain_forward_with_the_neuron_clamped(demo_model):
    model = demo_model
    prompts = load_texts(str(DEMO_CORPUS))[-4:]
    clamps = token_change(model, LAYER, NEURONS[:2], prompts, kl_target=0.25, prompt_tokens=12)
    for c in clamps:
        assert abs(c.kl - 0.25) <= 0.025 and c.strength > 0
        kls, changes, count = [], torch.zeros(model.cfg.d_vocab), 0
        for prompt in prompts:  # each prompt alone: no padding, TransformerLens' own forward
            tokens = model.to_tokens(prompt, prepend_bos=True)[:, :12]

            def clamp(act, hook, n=c.neuron, v=c.strength):
                act[:, 1:, n] = v
                return act

            with torch.no_grad():
                clean = model(tokens)[0, 1:]
                hooked = model.run_with_hooks(
                    tokens, fwd_hooks=[(f"blocks.{LAYER}.mlp.hook_post", clamp)]
                )[0, 1:]
            p = clean.log_softmax(-1)
            kls.append((p.exp() * (p - hooked.log_softmax(-1))).sum(-1))
            changes += (hooked - clean).sum(0)
            count += clean.shape[0]
        assert c.kl == pytest.approx(float(torch.cat(kls).mean()), rel=1e-4)
        torch.testing.assert_close(c.logit_change, changes / count, rtol=1e-4, atol=1e-4)
        assert (
            c.logit_change.topk(10).indices.tolist() == (changes / count).topk(10).indices.tolist()
        )


def test_epo_never_accepts_a_worse_prompt_and_reports_a_fresh_forwards_numbers(demo_model):
    model = demo_model
    allowed = allowed_tokens(model)
    result = optimise_prompt(model, LAYER, 100, allowed, prompt_length=6, steps=12, candidates=8)
    assert len(result.history) == len(result.accepted_steps) + 1 >= 3
    assert all(b > a for a, b in zip(result.history, result.history[1:]))
    assert result.history[-1] == result.objective
    assert all(bool(allowed[t]) for t in result.tokens)
    tokens = torch.tensor([[model.tokenizer.bos_token_id, *result.tokens]])
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{LAYER}.mlp.hook_post")
    activation = float(cache[f"blocks.{LAYER}.mlp.hook_post"][0, -1, 100])
    cross_entropy = float(model(tokens, return_type="loss"))  # mean next-token loss after BOS
    assert result.activation == pytest.approx(activation, abs=1e-4)
    assert result.cross_entropy == pytest.approx(cross_entropy, abs=1e-4)
    assert result.objective == pytest.approx(activation - 0.2 * cross_entropy, abs=1e-4)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_keeps_its_text_within_max_tokens(demo_model, name):
    options = {"prompts": load_texts(str(DEMO_CORPUS))[-2:]} if name == "token_change" else {}
    if name == "epo":
        options = {"prompt_length": 4, "steps": 2, "candidates": 4}
    texts = METHODS[name](demo_model, LAYER, [3, 3], max_tokens=4, **options)
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0]
    assert len(encode(demo_model.tokenizer, texts[:1], add_special_tokens=False)[0]) <= 4


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize(
    ("layer", "neurons", "options", "message"),
    [
        (4, [0], {}, "layer 4 is out of range: the model has 4 layers"),
        (-1, [0], {}, "layer -1 is out of range"),
        (1, [512], {}, "neuron 512 is out of range: layer 1's MLP has 512 neurons"),
        (1, [-1], {}, "neuron -1 is out of range"),
        (1, [0], {"max_tokens": 0}, "max_tokens must be >= 1, got 0"),
    ],
)
def test_bad_requests_are_refused_in_one_line(demo_model, name, layer, neurons, options, message):
    with pytest.raises(ValueError, match=message) as error:
        METHODS[name](demo_model, layer, neurons, **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kl", [0.0, -0.5])
def test_a_kl_target_at_or_below_zero_is_refused_in_one_line(demo_model, kl):
    with pytest.raises(ValueError, match=f"kl_target must be > 0, got {kl}") as error:
        METHODS["token_change"](demo_model, LAYER, [0], prompts=["a b c"], kl_target=kl)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="kl_target must be > 0"):
        token_change(demo_model, LAYER, [0], ["a b c"], kl_target=kl)


def spelling_tokenizer():
    """A tokenizer whose vocabulary holds whole words but which spells every word out letter by
    letter (BPE without merges): each word of a word list re-encodes to several tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    letters = list("abcdefgh")
    words = ["ab", "cde", "fgh", "abcdefgh", "ba", "hd"]
    vocab = {w: i for i, w in enumerate(letters + words)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core), [vocab[w] for w in words]


@pytest.mark.parametrize("max_tokens", [1, 2, 3, 5, 8, 12])
def test_a_word_list_never_re_encodes_to_more_than_max_tokens(max_tokens):
    from types import SimpleNamespace

    tokenizer, ids = spelling_tokenizer()
    model = SimpleNamespace(tokenizer=tokenizer)
    text = word_list(model, ids, max_tokens)  # type: ignore[arg-type]
    assert len(encode(tokenizer, [text], add_special_tokens=False)[0]) <= max_tokens
    if max_tokens >= 5:  # "ab cde" (5 letters) fits: words that fit are kept
        assert text.startswith("ab cde")

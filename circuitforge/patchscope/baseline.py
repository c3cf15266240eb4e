"""The gradient Patchscope's baseline: what X starts from, is decoded against, and whose typical
norm scales its steps and bounds it. One setting on the model, one function for both the
single-neuron run and the layer sweep:

    baseline: {words: 4000}                     # the mean word in the placeholder's slot
    baseline: {corpus: assets/demo/corpus.jsonl, n_documents: 100, window: 32}   # the seed's

`WordsBaseline`: the mean residual at the placeholder with each of the first N whole-word
tokens put there (`word_residuals.py`), an "average word" in that slot. `CorpusBaseline`: the
seed study's mean residual at the last token of the first N documents, each cut to its last
`window` tokens and left-padded (`circuitforge/data/baseline.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from transformer_lens import HookedTransformer

from circuitforge.data.baseline import ResidualBaseline, compute_baseline
from circuitforge.data.texts import load_texts
from circuitforge.model import hooks
from circuitforge.numerics import require_at_least_one
from circuitforge.patchscope.prompt import PlaceholderPrompt
from circuitforge.patchscope.word_residuals import vocabulary_words, word_residuals


@dataclass(frozen=True)
class WordsBaseline:
    """words: how many vocabulary words are averaged (the vocabulary's first whole words)."""

    words: int = 4000

    def __post_init__(self) -> None:
        require_at_least_one(**{"baseline.words": self.words})


@dataclass(frozen=True)
class CorpusBaseline:
    """corpus: a Hugging Face dataset name, or a local .txt (a document per line) / .jsonl(.gz);
    n_documents: the first N documents are averaged; window: each is cut to its last `window`
    tokens, left-padded; prepend_bos: BOS in front of each window (the seed study had none);
    text_field: the text column; batch_size: documents per forward pass."""

    corpus: str
    n_documents: int = 100
    window: int = 32
    prepend_bos: bool = False
    text_field: str = "text"
    batch_size: int = 8

    def __post_init__(self) -> None:
        require_at_least_one(
            **{
                "baseline.n_documents": self.n_documents,
                "baseline.window": self.window,
                "baseline.batch_size": self.batch_size,
            }
        )


Baseline = WordsBaseline | CorpusBaseline
DEFAULT = WordsBaseline()  # the real-model recipe's

OLD_SPELLINGS = {
    "words": "baseline: words is now baseline: {words: N} (N words averaged, 4000 before)",
    "corpus": (
        "baseline: corpus is now baseline: {corpus: <path or dataset>, n_documents: 100, "
        "window: 32} (the corpus moved from the data: block to the model)"
    ),
}


def checked_baseline(value: Baseline | str, n_words: int | None = None) -> Baseline:
    """The baseline setting, with the old spellings (`baseline: words` + `n_words`,
    `baseline: corpus` + a text data module) refused in one line naming the new one."""
    if n_words is not None:
        raise ValueError(f"n_words is gone: use baseline: {{words: {n_words}}}")
    if isinstance(value, str):
        raise ValueError(
            OLD_SPELLINGS.get(value, f"baseline: {value!r} is not a baseline")
            + "; see circuitforge/patchscope/baseline.py"
        )
    if not isinstance(value, WordsBaseline | CorpusBaseline):
        raise ValueError(f"baseline must be {{words: N}} or {{corpus: ...}}, got {value!r}")
    return value


def placeholder_baseline(
    model: HookedTransformer, baseline: Baseline, prompt: PlaceholderPrompt, layer: int
) -> ResidualBaseline:
    """The baseline at `blocks.{layer}.hook_resid_pre`: its mean and typical (mean) norm."""
    if isinstance(baseline, CorpusBaseline):
        texts = load_texts(baseline.corpus, baseline.n_documents, baseline.text_field)
        return compute_baseline(
            model, texts, layer, baseline.window, baseline.prepend_bos, baseline.batch_size
        )
    words = vocabulary_words(model, baseline.words)
    table = word_residuals(model, prompt, layer, words)
    return ResidualBaseline(
        mean=table.mean(0),
        typical_norm=float(table.norm(dim=-1).mean()),
        n_documents=len(words),
        hook_name=hooks.resid_pre(layer),
    )

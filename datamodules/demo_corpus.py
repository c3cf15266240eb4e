"""DemoCorpusDataModule: the generated demo corpus, its tokenizer, packed into training rows.

`setup` generates the corpus from its seed, learns the tokenizer, and writes both to `out_dir`
(`corpus.jsonl`, `tokenizer.json`) for the SAE training and the shipped assets. A training row is
one document, `<bos> text <eos>`, right-padded with `<pad>` (ignored by the loss) to the longest
row of its batch. Documents are not packed together: a row with two documents would let the
IOI answer be copied from the previous document's names, which blurs the task.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from jaxtyping import Int
from torch import Tensor
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast

from circuitforge.data.padding import right_padded
from circuitforge.demo_world.corpus import PATCHSCOPE_PROMPT, Document, generate_corpus
from circuitforge.demo_world.tokenizer import BOS, EOS, train_word_tokenizer
from circuitforge.model.local_dir import load_tokenizer
from circuitforge.model.tokenizer import encode, token_id
from circuitforge.numerics import require_at_least_one
from datamodules.items import Items


def document_rows(documents: list[list[int]], bos: int, eos: int, context: int) -> list[list[int]]:
    """`<bos> ids <eos>` per document, cut to `context` tokens."""
    return [[bos, *ids, eos][:context] for ids in documents]


class DemoCorpusDataModule(L.LightningDataModule):
    def __init__(
        self,
        seed: int = 0,
        n_train_documents: int = 40_000,
        n_heldout_per_topic: int = 200,
        context: int = 64,
        batch_size: int = 32,
        out_dir: str = "runs/demo_world",
    ) -> None:
        """Args:
        seed: the corpus generator's seed (the model's own seed is `seed_everything`).
        n_train_documents: training documents (1-3 sentences of one topic each).
        n_heldout_per_topic: held-out documents per topic (held-out templates, names, frames).
        context: longest training row, in tokens (longer documents are cut).
        batch_size: rows per optimisation step.
        out_dir: where `corpus.jsonl` and `tokenizer.json` are written.
        """
        super().__init__()
        self.save_hyperparameters()
        require_at_least_one(
            n_train_documents=n_train_documents, context=context, batch_size=batch_size
        )
        self.seed, self.context, self.batch_size = seed, context, batch_size
        self.n_train, self.n_heldout = n_train_documents, n_heldout_per_topic
        self.out_dir = Path(out_dir)
        self.documents: list[Document] = []
        self.tokenizer: PreTrainedTokenizerFast | None = None
        self.train_rows: list[list[int]] = []
        self.val_rows: list[list[int]] = []

    @property
    def tokenizer_path(self) -> Path:
        return self.out_dir / "tokenizer.json"

    @property
    def heldout_documents(self) -> list[Document]:
        """Validation documents (training frames) and held-out ones (held-out frames)."""
        return [d for d in self.documents if d.split != "train"]

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        self.documents = generate_corpus(self.n_train, self.n_heldout, self.seed)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "corpus.jsonl", "w") as f:
            for doc in self.documents:
                f.write(json.dumps(doc.to_json()) + "\n")
        # The vocabulary covers held-out words too (never seen in training: their loss is high).
        all_texts = [d.text for d in self.documents]
        backend = train_word_tokenizer(all_texts, extra_words=PATCHSCOPE_PROMPT.split())
        backend.save(str(self.tokenizer_path))
        self.tokenizer = load_tokenizer(self.tokenizer_path)
        self.train_rows = self._rows([d.text for d in self.documents if d.split == "train"])
        self.val_rows = self._rows([d.text for d in self.heldout_documents])

    def loaded_tokenizer(self) -> PreTrainedTokenizerFast:
        """The corpus's word tokenizer (trained in `setup`)."""
        if self.tokenizer is None:
            raise RuntimeError("DemoCorpusDataModule: setup() trains the tokenizer first")
        return self.tokenizer

    def _rows(self, texts: list[str]) -> list[list[int]]:
        tokenizer = self.loaded_tokenizer()
        ids = encode(tokenizer, texts, add_special_tokens=False)
        vocab = tokenizer.get_vocab()
        return document_rows(ids, vocab[BOS], vocab[EOS], self.context)

    def _collate(self, rows: list[list[int]]) -> Int[Tensor, "row pos"]:
        return right_padded(rows, token_id(self.loaded_tokenizer(), "pad"))

    @property
    def d_vocab(self) -> int:
        return len(self.loaded_tokenizer())

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            Items(self.train_rows),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self._collate,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            Items(self.val_rows), batch_size=4 * self.batch_size, collate_fn=self._collate
        )

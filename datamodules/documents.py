"""DocumentDataModule: the documents of a corpus, tokenised batch by batch, for the atlas.

Each item is one document (`<bos>` + its first `max_tokens - 1` tokens), tagged with its
absolute index in the source, so the atlas can point back at it. Documents are tokenised in
the loader's collate function, so only one batch of tokens exists at a time; under a
distributed strategy Lightning shards the document indices across processes (without the
padding repeats of training).
"""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from circuitforge.atlas.documents import DocumentBatch, DocumentFormat, collate_documents
from circuitforge.data.texts import load_texts
from circuitforge.model.tokenizer import maybe_token_id
from circuitforge.numerics import require_at_least_one
from datamodules.items import Items


class DocumentDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: str = "NeelNanda/pile-10k",
        n_documents: int | None = None,
        max_tokens: int = 128,
        prepend_bos: bool = True,
        text_field: str = "text",
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        """Args:
        source: a Hugging Face dataset name, or a local .txt (a document per line) / .jsonl file.
        n_documents: the first `n_documents` documents (all of them when not given).
        max_tokens: tokens per document, `<bos>` included (the original atlas used 128).
        prepend_bos: start every document with `<bos>`.
        text_field: the text column of the dataset or .jsonl file.
        batch_size: documents per forward pass (per process).
        num_workers: loader worker processes (tokenisation runs in them).
        """
        super().__init__()
        self.save_hyperparameters()
        require_at_least_one(n_documents=n_documents, max_tokens=max_tokens, batch_size=batch_size)
        self.source, self.n_documents, self.text_field = source, n_documents, text_field
        self.format = DocumentFormat(max_tokens, prepend_bos)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.texts: list[str] | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None

    def bind_tokenizer(self, tokenizer: PreTrainedTokenizerBase | None) -> None:
        """The frozen model's tokenizer (the module hands it over in its `setup`)."""
        if tokenizer is None:
            raise ValueError("the atlas needs a model with a tokenizer to read text documents")
        self.tokenizer = tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.texts is None:
            self.texts = load_texts(self.source, self.n_documents, self.text_field)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "n_documents": len(self.texts or []),
            "text_field": self.text_field,
            "max_tokens": self.format.max_tokens,
            "prepend_bos": self.format.prepend_bos,
        }

    def document_ids(self, index: int) -> list[int]:
        """The token ids document `index` was profiled on."""
        assert self.texts is not None and self.tokenizer is not None
        return self.format.token_ids(self.tokenizer, self.texts[index])

    def _collate(self, indices: list[int]) -> DocumentBatch:
        assert self.tokenizer is not None  # predict_dataloader checked it
        pad = maybe_token_id(self.tokenizer, "pad")
        rows = [(i, self.document_ids(i)) for i in indices]
        return collate_documents(rows, 0 if pad is None else pad)

    def predict_dataloader(self) -> DataLoader:
        if self.texts is None or self.tokenizer is None:
            raise RuntimeError("DocumentDataModule: setup() and bind_tokenizer() come first")
        return DataLoader(
            Items(range(len(self.texts))),
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=self._collate,
            num_workers=self.num_workers,
        )

"""Documents as the atlas sees them: `<bos>` + the first tokens of the text, right-padded.

One function makes a document's token ids, used both when the atlas is built and when a
document is re-loaded (reactivation, checks), so a stored (document, position) always points
at the token it was found on. A token's global id is `document * stride + position`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from circuitforge.data.padding import right_padded


@dataclass(frozen=True)
class DocumentFormat:
    """How a text becomes the token ids the atlas ran on (recorded in atlas.json)."""

    max_tokens: int = 128
    prepend_bos: bool = True

    def __post_init__(self) -> None:
        if self.max_tokens < 1 + self.prepend_bos:
            raise ValueError(f"max_tokens {self.max_tokens} leaves no room for a text token")

    def token_ids(self, tokenizer, text: str) -> list[int]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.prepend_bos:
            if tokenizer.bos_token_id is None:
                raise ValueError("prepend_bos: the tokenizer has no BOS token")
            ids = [tokenizer.bos_token_id, *ids]
        return ids[: self.max_tokens]


@dataclass
class DocumentBatch:
    tokens: Int[Tensor, "batch pos"]  # right-padded
    document: Int[Tensor, " batch"]  # absolute index of each row's document in the source
    length: Int[Tensor, " batch"]  # real tokens per row (<bos> included)

    def to(self, device: torch.device | str) -> DocumentBatch:
        return DocumentBatch(
            self.tokens.to(device), self.document.to(device), self.length.to(device)
        )

    def counted(self, skip_bos: bool) -> Bool[Tensor, "batch pos"]:
        """Which (row, position) tokens the atlas counts: real tokens, `<bos>` only if asked."""
        pos = torch.arange(self.tokens.shape[1], device=self.tokens.device)
        keep = pos[None, :] < self.length[:, None]
        if skip_bos:
            keep &= pos[None, :] > 0
        return keep

    def global_ids(self, stride: int) -> Int[Tensor, "batch pos"]:
        pos = torch.arange(self.tokens.shape[1], device=self.tokens.device)
        return self.document[:, None] * stride + pos[None, :]


def collate_documents(rows: list[tuple[int, list[int]]], pad_id: int) -> DocumentBatch:
    """(document index, token ids) pairs -> one right-padded batch."""
    documents, ids = zip(*rows)
    return DocumentBatch(
        tokens=right_padded(list(ids), pad_id),
        document=torch.tensor(documents, dtype=torch.int64),
        length=torch.tensor([len(r) for r in ids], dtype=torch.int64),
    )

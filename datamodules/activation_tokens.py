"""ActivationTokensDataModule: packed token windows of a corpus for dictionary training.

Training rows are the corpus's training split packed into `context`-token rows (each led by
BOS), read in an order fixed by (seed, epoch); the held-out split (the corpus's `split` field,
or its last `heldout_fraction` of documents) is never trained on and feeds the evaluation.
The loader yields `{"tokens", "epoch", "index"}`; the datamodule records the last batch that
reached training (`on_after_batch_transfer`) and saves it in the checkpoint (`state_dict`), so
`--ckpt_path last` continues mid-epoch at the next batch, none lost or repeated. The loader
(`TokenWindows`) has the same state (`state_dict` / `load_state_dict`, Lightning's interface of a
resumable loader), so Lightning knows it resumes mid-epoch exactly. Under ddp (`--trainer.strategy
ddp --trainer.devices N`) the epoch's batches are dealt out: step s of process r reads batch
s * N + r of the epoch's order (the batches past the last whole round are left out), so the N
processes read disjoint slices and one optimizer step sees N batches; a run resumes only with
the number of processes that wrote its checkpoint. The tokenizer is the frozen model's (the
module hands it over in its `setup`, before any forward).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from circuitforge.demo_world.sae_training import pack_documents, tokenize_documents
from circuitforge.dictionaries.tokens import epoch_order, read_split_documents
from circuitforge.numerics import require_at_least_one


class TokenWindows:
    """An epoch's batches: the first `n_rows` rows of the epoch's order, cut into batches, of
    which process `rank` of `processes` reads every `processes`-th; from step `start` on when the
    epoch is a resumed one."""

    def __init__(
        self,
        rows: torch.Tensor,
        n_rows: int,
        batch_size: int,
        seed: int,
        epoch_of,
        rank: int = 0,
        processes: int = 1,
    ) -> None:
        if not 0 <= rank < processes:
            raise ValueError(f"process {rank} of {processes}: no such process")
        self.rows, self.n_rows, self.batch_size = rows, n_rows, batch_size
        self.seed, self.epoch_of = seed, epoch_of  # epoch_of(): the trainer's current epoch
        self.rank, self.processes = rank, processes
        self.start: tuple[int, int] | None = None  # (epoch, step) to resume at, once
        self.position: tuple[int, int] | None = None  # (epoch, next step) of training

    def __len__(self) -> int:
        """Steps per epoch (each process reads one batch per step)."""
        return (self.n_rows // self.batch_size) // self.processes

    def batch_of(self, step: int) -> int:
        """The batch of the epoch's order this process reads at `step`."""
        return step * self.processes + self.rank

    def __iter__(self):
        epoch = self.epoch_of()
        first = 0
        if self.start is not None:
            if self.start[0] == epoch:
                first = self.start[1]
            self.start = None
        order = self.order(epoch)
        for index in range(first, len(self)):
            batch = self.batch_of(index)
            picked = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield self.batch(picked, epoch, index)

    def order(self, epoch: int) -> torch.Tensor:
        """The rows' order in `epoch` (fixed by the seed and the epoch)."""
        return epoch_order(self.rows.shape[0], self.seed, epoch)

    def batch(self, picked: torch.Tensor, epoch: int, index: int) -> dict[str, Any]:
        """The batch of rows `picked` (what the loader yields at step `index` of `epoch`)."""
        return {"tokens": self.rows[picked], "epoch": epoch, "index": index}

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "processes": self.processes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_processes(state, self.processes)
        self.position = self.start = state.get("position")


def check_processes(state: dict[str, Any], processes: int) -> None:
    """Refuse a resume with another number of processes (it would deal the batches otherwise)."""
    saved = state.get("processes", 1)
    if saved != processes:
        raise ValueError(
            f"the checkpoint was written by {saved} process(es) and this run has {processes}: "
            "dictionary training resumes only with the same trainer.devices"
        )


class ActivationTokensDataModule(L.LightningDataModule):
    def __init__(
        self,
        corpus: str = "assets/english_corpus/corpus.jsonl.gz",
        context: int = 128,
        batch_size: int = 16,
        seed: int = 0,
        heldout_fraction: float = 0.1,
        n_documents: int | None = None,
        tokens_per_epoch: int | None = None,
        heldout_rows: int = 32,
    ) -> None:
        """Args:
        corpus: a .jsonl / .jsonl.gz corpus (`text`, optional `split`: train / heldout).
        context: tokens per row (BOS included).
        batch_size: rows per training batch (one forward of the model).
        seed: fixes the rows' order in every epoch.
        heldout_fraction: the last fraction of documents held out when there is no `split`.
        n_documents: only the first documents of the corpus (tests, pilots).
        tokens_per_epoch: train on the first rows of each epoch's order only; more than the
            training split holds is refused (repeat the corpus with `trainer.max_epochs`).
        heldout_rows: held-out rows (one document each, BOS-led, packed) the evaluation reads.
        """
        super().__init__()
        require_at_least_one(context=context, batch_size=batch_size, heldout_rows=heldout_rows)
        self.corpus, self.context, self.batch_size, self.seed = corpus, context, batch_size, seed
        self.heldout_fraction, self.n_documents = heldout_fraction, n_documents
        self.tokens_per_epoch, self.heldout_rows = tokens_per_epoch, heldout_rows
        self.train_rows: torch.Tensor | None = None
        self.heldout: torch.Tensor | None = None
        self.excluded: list[int] = []
        self.position: tuple[int, int] | None = None  # (epoch, next batch) of training
        self.resume_at: tuple[int, int] | None = None
        self.loader: TokenWindows | None = None

    def bind_tokenizer(self, model) -> None:
        """Tokenise and pack the corpus with the frozen model's tokenizer (once)."""
        if self.train_rows is not None:
            return
        tokenizer = model.tokenizer
        if tokenizer is None or tokenizer.bos_token_id is None:
            raise ValueError("dictionary training needs a model whose tokenizer has a BOS token")
        train_docs, held_docs = read_split_documents(
            Path(self.corpus), self.heldout_fraction, self.n_documents
        )
        bos = tokenizer.bos_token_id
        rows = pack_documents(tokenize_documents(model, train_docs), self.context, bos)
        held = pack_documents(tokenize_documents(model, held_docs), self.context, bos)
        n_rows = rows.shape[0]
        if self.tokens_per_epoch is not None:
            wanted = -(-self.tokens_per_epoch // self.context)
            if wanted > n_rows:
                raise ValueError(
                    f"data.tokens_per_epoch={self.tokens_per_epoch} is more than the training "
                    f"split of {self.corpus} holds ({n_rows * self.context} tokens in rows of "
                    f"{self.context}); repeat it with trainer.max_epochs instead"
                )
            n_rows = wanted
        if n_rows < self.batch_size:
            raise ValueError(
                f"the training split of {self.corpus} fills {n_rows} rows of {self.context} "
                f"tokens, fewer than one batch (data.batch_size={self.batch_size})"
            )
        if held.shape[0] < self.heldout_rows:
            raise ValueError(
                f"the held-out split of {self.corpus} fills {held.shape[0]} rows of "
                f"{self.context} tokens, fewer than data.heldout_rows={self.heldout_rows}"
            )
        self.n_rows = n_rows
        self.train_rows = rows
        self.heldout = held[: self.heldout_rows]
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        special |= {t for t in (bos, tokenizer.pad_token_id) if t is not None}
        self.excluded = sorted(special)

    def describe(self) -> dict[str, Any]:
        assert self.train_rows is not None and self.heldout is not None
        return {
            "train_rows": int(self.train_rows.shape[0]),
            "rows_per_epoch": self.n_rows,
            "tokens_per_epoch": self.n_rows * self.context,
            "heldout_rows": int(self.heldout.shape[0]),
            "excluded_tokens": self.excluded,
        }

    def first_rows(self, n: int) -> torch.Tensor:
        """The first `n` rows of epoch 0's order (the slice the centring is measured on)."""
        assert self.train_rows is not None
        order = epoch_order(self.train_rows.shape[0], self.seed, 0)
        return self.train_rows[order[:n]]

    def _current_epoch(self) -> int:
        if self.trainer is None:
            raise RuntimeError("the token windows are read by a trainer's fit")
        return self.trainer.current_epoch

    def train_dataloader(self) -> TokenWindows:
        if self.train_rows is None:
            raise RuntimeError("bind_tokenizer was not called (the module does it in setup)")
        if self.loader is None:
            self.loader = self.new_loader()
            if len(self.loader) == 0:
                raise ValueError(
                    f"{self.n_rows // self.batch_size} batches per epoch cannot be dealt to "
                    f"{self.loader.processes} processes: fewer devices or more data"
                )
        self.loader.start = self.resume_at
        self.loader.position = self.position
        self.resume_at = None
        return self.loader

    def new_loader(self) -> TokenWindows:
        """This process's loader of the training rows."""
        assert self.train_rows is not None
        return TokenWindows(
            self.train_rows,
            self.n_rows,
            self.batch_size,
            self.seed,
            self._current_epoch,
            rank=self._trainer_int("global_rank", 0),
            processes=self._processes(),
        )

    def _trainer_int(self, name: str, default: int) -> int:
        return int(getattr(self.trainer, name, default)) if self.trainer is not None else default

    def _processes(self) -> int:
        return self._trainer_int("world_size", 1)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.trainer is not None and self.trainer.training:
            self.position = (int(batch["epoch"]), int(batch["index"]) + 1)
            if self.loader is not None:
                self.loader.position = self.position
        return batch

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"position": self.position}
        if self._processes() != 1:
            state["processes"] = self._processes()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_processes(state, self._processes())
        self.position = state.get("position")
        self.resume_at = self.position

"""A clean prompt, its corrupted twin, and the answer tokens; tokenised with clear errors.

`PairTensors` is what the masked forward consumes: `clean` and `corrupt` [n, pos] (right-padded,
each pair the same length), `read` [n, pos] (the positions whose output the metric reads: the
last token of the prompt for next-token tasks, every non-BOS position for tracr) and `answer`,
`wrong_answer` [n] (-1 when the task has no answer token, e.g. tracr).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from circuitforge.file_checks import DamagedFileError, read_text


@dataclass(frozen=True)
class PromptPair:
    clean: str
    corrupt: str
    answer: str
    wrong_answer: str
    origin: str = field(default="", compare=False)  # `file:line` of a pair read from a file


@dataclass
class PairTensors:
    clean: Int[Tensor, "n pos"]
    corrupt: Int[Tensor, "n pos"]
    read: Bool[Tensor, "n pos"]
    answer: Int[Tensor, " n"]
    wrong_answer: Int[Tensor, " n"]

    def __len__(self) -> int:
        return self.clean.shape[0]

    def row(self, i: int) -> dict[str, Tensor]:
        return {
            k: getattr(self, k)[i] for k in ("clean", "corrupt", "read", "answer", "wrong_answer")
        }


def _tokens(model, text: str) -> list[int]:
    return model.to_tokens(text, prepend_bos=True)[0].tolist()


def single_token(model, text: str, what: str) -> int:
    ids = model.to_tokens(text, prepend_bos=False)[0].tolist()
    if len(ids) != 1:
        pieces = [model.tokenizer.decode([i]) for i in ids] if model.tokenizer else ids
        raise ValueError(f"{what} {text!r} is not one token for this model: {pieces}")
    return ids[0]


def tokenize_pairs(model, pairs: list[PromptPair], pad_id: int | None = None) -> PairTensors:
    """Tokenise with the model's tokenizer (BOS prepended); the answer is read after the prompt."""
    if not pairs:
        raise ValueError("no prompt pairs")
    clean, corrupt, answer, wrong = [], [], [], []
    for i, pair in enumerate(pairs):
        where = pair.origin or f"pair {i}"
        c, x = _tokens(model, pair.clean), _tokens(model, pair.corrupt)
        if len(c) != len(x):
            raise ValueError(
                f"{where}: clean and corrupt prompts tokenize to different lengths "
                f"({len(c)} vs {len(x)}): {pair.clean!r} / {pair.corrupt!r}. Edge patching mixes "
                "activations position by position, so both must have the same number of tokens"
            )
        clean.append(c)
        corrupt.append(x)
        answer.append(single_token(model, pair.answer, f"{where}: answer"))
        wrong.append(single_token(model, pair.wrong_answer, f"{where}: wrong answer"))
    pad: int = pad_id if pad_id is not None else getattr(model.tokenizer, "pad_token_id", None) or 0
    width = max(len(c) for c in clean)
    n = len(pairs)
    out = PairTensors(
        torch.full((n, width), pad),
        torch.full((n, width), pad),
        torch.zeros(n, width, dtype=torch.bool),
        torch.tensor(answer),
        torch.tensor(wrong),
    )
    for i, (c, x) in enumerate(zip(clean, corrupt)):
        out.clean[i, : len(c)] = torch.tensor(c)
        out.corrupt[i, : len(x)] = torch.tensor(x)
        out.read[i, len(c) - 1] = True
    return out


def read_jsonl(path: str | Path) -> list[PromptPair]:
    """`{clean, corrupt, answer, wrong_answer}` per line (each pair knows its `file:line`)."""
    pairs = []
    if not Path(path).is_file():
        raise FileNotFoundError(f"prompt-pair file {path} does not exist")
    for n, line in enumerate(read_text(path, "prompt-pair file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(
                PromptPair(
                    row["clean"], row["corrupt"], row["answer"], row["wrong_answer"], f"{path}:{n}"
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path}:{n}: each line must be a JSON object with clean, corrupt, answer and "
                f"wrong_answer ({type(err).__name__}: {err})"
            ) from err
    if not pairs:
        raise DamagedFileError(f"prompt-pair file {path} holds no pairs")
    return pairs

"""What the demo model learned: held-out loss per topic, IOI and greater-than accuracy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.data.padding import right_padded
from circuitforge.demo_world.corpus import (
    Document,
    GreaterThanPrompt,
    IOIPrompt,
    greater_than_prompts,
    ioi_prompts,
)
from circuitforge.model import tokenizer as tk


def encode(model: HookedTransformer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, `<bos>` first (the tokenizer's post-processor prepends it)."""
    tokenizer = tk.tokenizer_of(model)
    ids = tk.encode(tokenizer, texts, add_special_tokens=True)
    bos = tk.token_id(tokenizer, "bos")
    return [row if row[:1] == [bos] else [bos, *row] for row in ids]


def next_token_losses(
    model: HookedTransformer, tokens: Int[Tensor, "row pos"], pad: int
) -> Float[Tensor, "row pos_minus_1"]:
    """Cross-entropy of every next token; 0 where the target is padding."""
    logits = model(tokens, return_type="logits")[:, :-1]
    targets = tokens[:, 1:]
    losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    return losses.view_as(targets) * (targets != pad)


@torch.no_grad()
def loss_per_topic(
    model: HookedTransformer, documents: Sequence[Document], batch_size: int = 64
) -> dict[str, float]:
    """Mean next-token loss over every token of the documents of each topic (`<bos>` excluded
    as a target, it is never predicted), one document per row, right-padded."""
    pad = tk.token_id(tk.tokenizer_of(model), "pad")
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for start in range(0, len(documents), batch_size):
        batch = documents[start : start + batch_size]
        rows = encode(model, [d.text for d in batch])
        tokens = right_padded(rows, pad).to(model.cfg.device)
        losses = next_token_losses(model, tokens, pad)
        for doc, row_loss, row in zip(batch, losses, rows):
            total[doc.topic] += float(row_loss.sum())
            count[doc.topic] += len(row) - 1
    return {topic: total[topic] / count[topic] for topic in sorted(total)}


@torch.no_grad()
def last_token_logits(
    model: HookedTransformer, prompts: Sequence[str], batch_size: int = 64
) -> Float[Tensor, "prompt d_vocab"]:
    """Logits at each prompt's last token (right padding: causal attention never sees it)."""
    pad = tk.token_id(tk.tokenizer_of(model), "pad")
    out = []
    for start in range(0, len(prompts), batch_size):
        rows = encode(model, prompts[start : start + batch_size])
        tokens = right_padded(rows, pad).to(model.cfg.device)
        logits = model(tokens, return_type="logits")
        last = torch.tensor([len(r) - 1 for r in rows], device=logits.device)
        out.append(logits[torch.arange(len(rows), device=logits.device), last].float().cpu())
    return torch.cat(out)


def single_token(model: HookedTransformer, word: str) -> int:
    (ids,) = tk.encode(tk.tokenizer_of(model), [word], add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{word!r} is {len(ids)} tokens, not one")
    return ids[0]


def ioi_accuracy(model: HookedTransformer, prompts: Sequence[IOIPrompt]) -> dict[str, float]:
    """Fraction of prompts whose indirect object outranks the subject, and the mean logit diff."""
    logits = last_token_logits(model, [p.prompt for p in prompts])
    answer = torch.tensor([single_token(model, p.answer) for p in prompts])
    wrong = torch.tensor([single_token(model, p.wrong) for p in prompts])
    rows = torch.arange(len(prompts))
    diff = logits[rows, answer] - logits[rows, wrong]
    top1 = logits.argmax(-1) == answer
    return {
        "accuracy": float((diff > 0).float().mean()),
        "top1_accuracy": float(top1.float().mean()),
        "logit_diff": float(diff.mean()),
        "n": len(prompts),
    }


def greater_than_accuracy(
    model: HookedTransformer, prompts: Sequence[GreaterThanPrompt]
) -> dict[str, float]:
    """Over the two-digit tokens: how often the most likely one is greater than the start year,
    and Hanna et al.'s probability difference p(YY > start) - p(YY <= start)."""
    logits = last_token_logits(model, [p.prompt for p in prompts])
    years = torch.tensor([single_token(model, f"{yy:02d}") for yy in range(100)])
    probs = logits.softmax(-1)[:, years]  # [prompt, 100], probability of "00".."99"
    start = torch.tensor([p.start_yy for p in prompts])
    later = torch.arange(100)[None, :] > start[:, None]
    best = probs.argmax(-1)
    return {
        "accuracy": float((best > start).float().mean()),
        "probability_difference": float(
            ((probs * later).sum(-1) - (probs * ~later).sum(-1)).mean()
        ),
        "year_token_mass": float(probs.sum(-1).mean()),
        "n": len(prompts),
    }


def evaluate_language_model(model, heldout_documents, n_prompts: int, seed: int) -> dict[str, Any]:
    """Loss per topic and split; IOI on held-out names and/or templates; greater-than."""
    was_training = model.training
    model.eval()
    split = {s: [d for d in heldout_documents if d.split == s] for s in ("validation", "heldout")}
    ioi_sets = {  # (held-out names, held-out templates)
        "ioi_heldout_names_and_templates": (True, True),
        "ioi_heldout_names_training_templates": (True, False),
        "ioi_training_names_heldout_templates": (False, True),
        "ioi_training_names_and_templates": (False, False),
    }
    with torch.no_grad():
        result: dict[str, Any] = {
            "validation_loss": loss_per_topic(model, split["validation"]),
            "heldout_loss": loss_per_topic(model, split["heldout"]),
        }
        for name, (names, templates) in ioi_sets.items():
            prompts = ioi_prompts(n_prompts, seed, heldout=names, heldout_templates=templates)
            result[name] = ioi_accuracy(model, prompts)
        result["greater_than_heldout_nouns"] = greater_than_accuracy(
            model, greater_than_prompts(n_prompts, seed)
        )
    model.train(was_training)
    return result

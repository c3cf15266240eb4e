"""S3 output effect: the neuron clamped on held-out prompts at the strength that moves the
next-token distribution by a KL target (0.25, 0.5), and the change of E's content tokens'
log-probabilities under it.

The clamp and the bracketed search for its strength are `circuitforge.explanations.methods.clamp`
(the same clamp M5 TokenChange sizes its intervention with: doubling from 1 until KL >= target,
then bisection in log space). At the strength found, `log_prob_change` is each vocabulary token's
mean change in log-probability over the prompts' real tokens after the first (where the clamp
acts). S3 of a text = the mean of that change over the text's content tokens (`content_ids`:
the text's tokens that decode to a word of >= 3 letters outside a few function words). The 1-of-3
test: the neuron's own E against two other neurons' texts under the same clamp; right when E's
S3 is the largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.explanations.methods.clamp import Probe, clamp_for_kl, clamp_hook
from circuitforge.model import hooks
from circuitforge.model.forward import run_blocks, unembed
from circuitforge.model.tokenizer import decode, encode, tokenizer_of

FUNCTION_WORDS = frozenset(
    "the and for are but not you all any can had her was one our out has him his how its may "
    "who did get she too use that with have this from they will would there their what about "
    "which when were been into than then them these some could other more also only".split()
)


def check_kl_targets(kl_targets: list[float]) -> None:
    if not kl_targets or any(not k > 0 for k in kl_targets):
        raise ValueError(f"kl_targets must be > 0 (at least one), got {kl_targets}")


def content_ids(model: HookedTransformer, text: str) -> list[int]:
    """The distinct tokens of ` text` that decode to a content word (letters only, >= 3 of them,
    not a function word)."""
    tokenizer = tokenizer_of(model)
    (ids,) = encode(tokenizer, [" " + text.strip()], add_special_tokens=False)
    keep = []
    for i in dict.fromkeys(ids):
        word = decode(tokenizer, [i]).strip()
        if len(word) >= 3 and word.isalpha() and word.lower() not in FUNCTION_WORDS:
            keep.append(i)
    return keep


@torch.no_grad()
def log_prob_change(
    model: HookedTransformer, probe: Probe, neuron: int, strength: float
) -> Float[Tensor, " d_vocab"]:
    """Mean over the probe's clamped tokens of log q(v) - log p(v) for every token v, with the
    neuron clamped to `strength` (q) and clean (p)."""
    hook = clamp_hook(torch.tensor([neuron]), torch.tensor([strength]), probe.tokens.shape[0])
    with model.hooks(fwd_hooks=[(hooks.mlp_post(probe.layer), hook)]):
        final = run_blocks(model, probe.residual, probe.layer, model.cfg.n_layers)
    log_q = unembed(model, final).float().log_softmax(-1)
    valid = probe.valid.to(log_q.device)
    change = (log_q - probe.clean_log_probs.to(log_q.device)) * valid[..., None]
    return (change.sum((0, 1)) / valid.sum()).cpu()


@dataclass(frozen=True)
class Effect:
    neuron: int
    kl_target: float
    strength: float
    kl: float  # reached at `strength`
    change: Float[Tensor, " d_vocab"]  # `log_prob_change` at `strength`


def neuron_effects(
    model: HookedTransformer, probe: Probe, neurons: list[int], kl_targets: list[float],
    tolerance: float = 0.1, steps: int = 16,
) -> list[list[Effect]]:  # fmt: skip
    """Per neuron, per KL target: the clamp found by the search and its log-prob changes."""
    check_kl_targets(kl_targets)
    by_target = [  # one neuron per clamped batch: its logits are prompts x pos x d_vocab
        clamp_for_kl(model, probe, neurons, k, tolerance, steps, batch_size=1) for k in kl_targets
    ]
    return [
        [
            Effect(
                n,
                k,
                found[i].strength,
                found[i].kl,
                log_prob_change(model, probe, n, found[i].strength),
            )
            for k, found in zip(kl_targets, by_target)
        ]
        for i, n in enumerate(neurons)
    ]


def text_effect(change: Float[Tensor, " d_vocab"], ids: list[int]) -> float | None:
    """Mean change over `ids`; None when the text has no content token."""
    return float(change[torch.tensor(ids)].mean()) if ids else None


def one_of_three(own: float | None, first: float | None, second: float | None) -> bool | None:
    """Right when the own text's effect beats both others' (None when any is missing)."""
    if own is None or first is None or second is None:
        return None
    return own > first and own > second

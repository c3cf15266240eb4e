"""A neuron clamped on held-out prompts at the strength that moves the model's next-token
distribution by a chosen KL (delphi's and the output-centric paper's way of sizing an
intervention: to an effect, not to a maximum).

The clamp sets `blocks.{layer}.mlp.hook_post[..., neuron]` to a value v at every position but the
first (BOS, the attention sink, is left alone; without a BOS the first token is left too). KL(v)
is KL(clean || clamped) of the next-token distributions, averaged over the prompts' real tokens
(positions 1..), as `get_kl_div` of yoavgur/Feature-Descriptions and delphi's intervention scorer
take it. The strength is searched per neuron from 1 by secant steps in log-log (`_next_value`),
until a KL within `tolerance` x target or `steps` evaluations; the value
kept is the one whose KL came closest to the target (its KL is returned beside it).

The probe runs the prompts once up to `resid_pre(layer)`; every clamped run starts there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.model import hooks
from circuitforge.model.forward import embed, run_blocks, unembed
from circuitforge.model.tokenizer import encode, maybe_token_id, tokenizer_of


@dataclass(frozen=True)
class Probe:
    """Prompts run once up to `resid_pre(layer)`, with their clean next-token log-probs."""

    layer: int
    tokens: Int[Tensor, "prompt pos"]  # right-padded; causal attention: pads change nothing real
    valid: Bool[Tensor, "prompt pos"]  # real tokens after the first (where the clamp acts)
    residual: Float[Tensor, "prompt pos d_model"]  # resid_pre(layer) of the clean run
    clean_log_probs: Float[Tensor, "prompt pos d_vocab"]
    clean_logits: Float[Tensor, "prompt pos d_vocab"]


@torch.no_grad()
def make_probe(
    model: HookedTransformer, layer: int, prompts: list[str], max_prompt_tokens: int = 24
) -> Probe:
    """Each prompt as `<bos> + its first max_prompt_tokens - 1 tokens`; a prompt of one token or
    none is refused."""
    if not prompts:
        raise ValueError("the clamp needs at least one held-out prompt")
    tokenizer = tokenizer_of(model)
    bos = maybe_token_id(tokenizer, "bos")
    start = [] if bos is None else [bos]
    seqs = [(start + ids)[:max_prompt_tokens] for ids in encode(tokenizer, prompts, False)]
    short = [i for i, s in enumerate(seqs) if len(s) < 2]
    if short:
        raise ValueError(f"held-out prompt {short[0]} ({prompts[short[0]]!r}) has under 2 tokens")
    width = max(len(s) for s in seqs)
    pad = maybe_token_id(tokenizer, "pad") or 0
    tokens = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    valid = torch.tensor([[0 < j < len(s) for j in range(width)] for s in seqs])
    residual, _ = embed(model, tokens.to(model.cfg.device))
    residual = run_blocks(model, residual, 0, layer)
    logits = unembed(model, run_blocks(model, residual, layer, model.cfg.n_layers)).float()
    return Probe(layer, tokens, valid, residual, logits.log_softmax(-1), logits)


def clamp_hook(neurons: Int[Tensor, " row"], values: Float[Tensor, " row"], rows_per: int):
    """A hook on `mlp_post(layer)` setting neuron `neurons[i]` to `values[i]` in the i-th block
    of `rows_per` rows, at every position but the first."""

    def hook(act: Tensor, hook) -> Tensor:
        row = torch.arange(act.shape[0], device=act.device)
        which = row // rows_per
        act[row, 1:, neurons.to(act.device)[which]] = values.to(act)[which][:, None]
        return act

    return hook


@torch.no_grad()
def clamped_effect(
    model: HookedTransformer, probe: Probe, neurons: list[int], values: list[float]
) -> tuple[Float[Tensor, " neuron"], Float[Tensor, "neuron d_vocab"]]:
    """Per (neuron, value): KL(clean || clamped) averaged over the probe's real tokens after the
    first, and the mean change of each token's logit over the same tokens."""
    p = probe.tokens.shape[0]
    n = len(neurons)
    residual = probe.residual.repeat(n, 1, 1)
    hook = clamp_hook(torch.tensor(neurons), torch.tensor(values, dtype=torch.float), p)
    with model.hooks(fwd_hooks=[(hooks.mlp_post(probe.layer), hook)]):
        final = run_blocks(model, residual, probe.layer, model.cfg.n_layers)
    final = final.view(n, p, *final.shape[1:])
    valid = probe.valid.to(final.device)
    count = valid.sum()
    clean = probe.clean_log_probs.to(final.device)
    clean_logits = probe.clean_logits.to(final.device)
    kls, changes = [], []
    for row in final:  # one neuron's prompts at a time: [prompt, pos, d_vocab] is large
        logits = unembed(model, row).float()
        log_q = logits.log_softmax(-1)
        kl = (clean.exp() * (clean - log_q)).sum(-1)  # [prompt, pos]
        kls.append((kl * valid).sum() / count)
        changes.append(((logits - clean_logits) * valid[..., None]).sum((0, 1)) / count)
    return torch.stack(kls).cpu(), torch.stack(changes).cpu()


@dataclass(frozen=True)
class Clamp:
    neuron: int
    strength: float  # the value the neuron is clamped to
    kl: float  # KL(clean || clamped) at that strength
    logit_change: Float[Tensor, " d_vocab"]  # mean change of each logit at that strength


def clamp_for_kl(
    model: HookedTransformer,
    probe: Probe,
    neurons: list[int],
    kl_target: float,
    tolerance: float = 0.1,
    steps: int = 16,
    batch_size: int = 4,
) -> list[Clamp]:
    """Per neuron, the strength whose KL is within `tolerance` x `kl_target` of `kl_target`
    (searched as the module docstring says, at most `steps` evaluations), and its effect."""
    if kl_target <= 0:
        raise ValueError(f"kl_target must be > 0, got {kl_target}")
    if tolerance <= 0 or steps < 1 or batch_size < 1:
        raise ValueError(
            f"tolerance {tolerance} must be > 0, steps {steps} and batch_size {batch_size} >= 1"
        )
    out = []
    for start in range(0, len(neurons), batch_size):
        out += _search(
            model, probe, neurons[start : start + batch_size], kl_target, tolerance, steps
        )
    return out


def _next_value(points: list[tuple[float, float]], kl_target: float) -> float:
    """The next strength to try from the (strength, KL) pairs seen: a secant step in log-log
    (KL grows about as a power of the strength; slope 2 until two points are known, clipped
    to 0.5..4, the step to x/16..x16), kept inside the bracket of the points seen on each side
    of the target (its geometric middle where the step leaves it)."""
    v, kl = points[-1]
    slope = 2.0
    if len(points) >= 2:
        v0, kl0 = points[-2]
        if v0 != v and kl0 > 0 and kl > 0:
            slope = min(4.0, max(0.5, math.log(kl / kl0) / math.log(v / v0)))
    guess = v * (kl_target / max(kl, 1e-12)) ** (1 / slope)
    guess = min(16 * v, max(v / 16, guess))
    below = [p for p, k in points if k < kl_target]
    above = [p for p, k in points if k >= kl_target]
    low = max(below) if below else None
    high = min(above) if above else None
    if low is not None and high is not None and not low < guess < high:
        guess = math.sqrt(low * high)
    return guess


def _search(model, probe, neurons, kl_target, tolerance, steps) -> list[Clamp]:
    n = len(neurons)
    points: list[list[tuple[float, float]]] = [[] for _ in range(n)]
    value = [1.0] * n
    best: list[Clamp | None] = [None] * n
    done = [False] * n
    for _ in range(steps):
        todo = [i for i in range(n) if not done[i]]
        if not todo:
            break
        kl, change = clamped_effect(
            model, probe, [neurons[i] for i in todo], [value[i] for i in todo]
        )
        for j, i in enumerate(todo):
            seen = Clamp(neurons[i], value[i], float(kl[j]), change[j])
            kept = best[i]
            if kept is None or abs(seen.kl - kl_target) < abs(kept.kl - kl_target):
                best[i] = seen
            if abs(seen.kl - kl_target) <= tolerance * kl_target:
                done[i] = True
                continue
            points[i].append((value[i], seen.kl))
            value[i] = _next_value(points[i], kl_target)
    return [b for b in best if b is not None]

"""M6: a fluent prompt that drives the neuron, found by discrete optimisation (EPO-style).

Thompson et al., "Fluent dreaming for language models" (EPO), maximise a neuron's activation
minus lambda x the prompt's own cross-entropy with GCG-like token swaps (token gradients propose,
exact forwards decide), keeping a population across a range of lambdas. Ours is the budgeted
single-lambda version, per neuron:

- the prompt: `<bos>` then `prompt_length` tokens, started from seeded random allowed tokens;
- the objective f = a - `fluency_weight` x CE: a is `blocks.{layer}.mlp.hook_post[neuron]` at
  the prompt's last token, CE the prompt's mean next-token cross-entropy under the model
  (nats; each token given the ones before it, the first given `<bos>`);
- each step: the gradient of f with respect to each position's one-hot token (through
  `hook_embed`: d f / d onehot = d f / d embedding @ W_E^T) ranks the allowed tokens; `candidates`
  prompts each change one position (spread over the positions) to one of its `top_k` tokens,
  drawn at random; all are evaluated exactly in one batch, and the best replaces the prompt only
  if it raises f (so f never falls between accepted steps).

Allowed tokens: `common.allowed_tokens` (`ascii_only`, the default: printable ASCII words).
Cost per neuron: `steps` x (one forward+backward of the prompt + one forward of `candidates`
prompts), the whole model each (the cross-entropy needs the logits): about 170 s per
Gemma-3-270M neuron at the defaults on one shared thread here (issue26_methods.md).
E = the prompt's text (its tokens decoded; a decoded prompt may re-encode to other tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.explanations.methods.common import allowed_tokens, check_request
from circuitforge.model import hooks
from circuitforge.model.tokenizer import decode, encode, maybe_token_id, tokenizer_of


@dataclass
class EpoResult:
    neuron: int
    tokens: list[int]  # the prompt after <bos>
    activation: float
    cross_entropy: float
    objective: float
    history: list[float] = field(default_factory=list)  # f after the start and each accepted step
    accepted_steps: list[int] = field(default_factory=list)


def _with_bos(model: HookedTransformer, prompts: Int[Tensor, "batch prompt"]) -> Tensor:
    bos = maybe_token_id(tokenizer_of(model), "bos")
    if bos is None:
        return prompts
    return torch.cat([torch.full_like(prompts[:, :1], bos), prompts], dim=1)


def objective_terms(
    model: HookedTransformer,
    layer: int,
    neuron: int,
    prompts: Int[Tensor, "batch prompt"],
    fluency_weight: float,
    embed_grad: bool = False,
) -> tuple[
    Float[Tensor, " batch"], Float[Tensor, " batch"], Float[Tensor, " batch"], Tensor | None
]:
    """(f, activation, cross-entropy) per prompt and, with `embed_grad`, d f[0] / d one-hot
    of prompt 0's tokens [prompt, d_vocab]."""
    tokens = _with_bos(model, prompts).to(model.cfg.device)
    offset = tokens.shape[1] - prompts.shape[1]  # 1 with a BOS
    seen: dict[str, Tensor] = {}

    def keep_post(act: Tensor, hook) -> None:
        seen["a"] = act[:, -1, neuron]

    def leaf_embed(act: Tensor, hook) -> Tensor:
        seen["e"] = act.detach().requires_grad_(True)
        return seen["e"]

    fwd: hooks.FwdHooks = [(hooks.mlp_post(layer), keep_post)]
    if embed_grad:
        fwd.append((hooks.EMBED, leaf_embed))
    with torch.set_grad_enabled(embed_grad), model.hooks(fwd_hooks=fwd):
        logits = model(tokens).float()
        log_p = logits[:, :-1].log_softmax(-1)
        nll = -log_p.gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, pos - 1]
        cross_entropy = nll[:, max(offset - 1, 0) :].mean(-1)
        activation = seen["a"].float()
        f = activation - fluency_weight * cross_entropy
        grad = None
        if embed_grad:
            (g,) = torch.autograd.grad(f[0], seen["e"])
            grad = (g[0, offset:] @ model.W_E.T).float().cpu()
    return f.detach().cpu(), activation.detach().cpu(), cross_entropy.detach().cpu(), grad


def optimise_prompt(
    model: HookedTransformer,
    layer: int,
    neuron: int,
    allowed: Bool[Tensor, " d_vocab"],
    prompt_length: int = 8,
    steps: int = 16,
    candidates: int = 16,
    top_k: int = 32,
    fluency_weight: float = 0.2,
    seed: int = 0,
) -> EpoResult:
    """The search of the module docstring for one neuron."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + neuron)
    pool = allowed.nonzero()[:, 0]
    prompt = pool[torch.randint(len(pool), (prompt_length,), generator=g)][None]
    f, a, ce, grad = objective_terms(model, layer, neuron, prompt, fluency_weight, True)
    result = EpoResult(neuron, prompt[0].tolist(), float(a[0]), float(ce[0]), float(f[0]))
    result.history.append(result.objective)
    for step in range(steps):
        assert grad is not None
        scores = grad.masked_fill(~allowed, float("-inf"))
        scores[torch.arange(prompt_length), prompt[0]] = float("-inf")  # a swap changes a token
        options = scores.topk(min(top_k, int(allowed.sum()) - 1), dim=-1).indices
        position = torch.randperm(prompt_length, generator=g).repeat(
            candidates // prompt_length + 1
        )[:candidates]
        pick = torch.randint(options.shape[1], (candidates,), generator=g)
        trial = prompt.repeat(candidates, 1)
        trial[torch.arange(candidates), position] = options[position, pick]
        trial = torch.unique(trial, dim=0)
        f_trial, a_trial, ce_trial, _ = objective_terms(model, layer, neuron, trial, fluency_weight)
        best = int(f_trial.argmax())
        if float(f_trial[best]) > result.objective:
            prompt = trial[best : best + 1]
            result = EpoResult(
                neuron,
                prompt[0].tolist(),
                float(a_trial[best]),
                float(ce_trial[best]),
                float(f_trial[best]),
                result.history + [float(f_trial[best])],
                result.accepted_steps + [step],
            )
            if step + 1 < steps:
                _, _, _, grad = objective_terms(model, layer, neuron, prompt, fluency_weight, True)
    return result


def explain_epo(
    model: HookedTransformer,
    layer: int,
    neurons: list[int],
    *,
    max_tokens: int = 24,
    prompt_length: int = 8,
    steps: int = 16,
    candidates: int = 16,
    top_k: int = 32,
    fluency_weight: float = 0.2,
    ascii_only: bool = True,
    seed: int = 0,
) -> list[str]:
    """E = the optimised prompt's text, cut (at its end) to fit `max_tokens` tokens."""
    check_request(model, layer, neurons, max_tokens)
    if not 1 <= prompt_length <= max_tokens:
        raise ValueError(
            f"epo: prompt_length must be in 1..max_tokens ({max_tokens}), got {prompt_length}"
        )
    if steps < 0 or candidates < 1 or top_k < 1 or fluency_weight < 0:
        raise ValueError(
            f"epo: steps {steps} must be >= 0, candidates {candidates} and top_k {top_k} >= 1, "
            f"fluency_weight {fluency_weight} >= 0"
        )
    allowed = allowed_tokens(model, ascii_only)
    tokenizer = tokenizer_of(model)
    texts = []
    for n in neurons:
        found = optimise_prompt(
            model, layer, n, allowed, prompt_length, steps, candidates, top_k, fluency_weight, seed
        )
        ids = found.tokens
        text = decode(tokenizer, ids)
        while len(encode(tokenizer, [text], add_special_tokens=False)[0]) > max_tokens:
            ids = ids[:-1]
            text = decode(tokenizer, ids)
        texts.append(text)
    return texts

"""Explanation methods of issue 26: each turns a neuron of an MLP layer into a short text E.

Every method is one pure function with the same signature (`ExplainMethod`):

    explain(model, layer, neurons, *, max_tokens=24, **options) -> list[str]

- `model`: the frozen HookedTransformer (not modified; hooks are scoped to each call);
- `layer`: the block whose `blocks.{layer}.mlp.hook_post` holds the neurons;
- `neurons`: indices into that hook's last axis (repeats allowed; one text per entry, in order);
- `max_tokens`: E re-encoded by the model's tokenizer (no special tokens) has at most this many
  tokens (>= 1);
- `options`: the method's own keyword settings (each method's docstring lists them); an option a
  method does not know raises a TypeError, like any Python keyword.

Bad input is refused with one ValueError line (a layer or neuron out of range, `max_tokens` < 1,
a method's own bad setting such as a KL target <= 0). `METHODS` names them for configs and for
the benchmark (`circuitforge/explanations/benchmark/`):

    vocab_proj    M4, output-centric: W_out row through the post-MLP norm, the final norm and W_U
    token_change  M5, output-centric: the neuron clamped on held-out prompts, tokens whose logits
                  move most (clamp sized to a KL target)
    epo           M6, input-centric: a fluent prompt found by discrete optimisation (activation
                  minus lambda x the prompt's own cross-entropy)
"""

from __future__ import annotations

from collections.abc import Callable

from circuitforge.explanations.methods.common import ExplainMethod
from circuitforge.explanations.methods.epo import explain_epo
from circuitforge.explanations.methods.token_change import explain_token_change
from circuitforge.explanations.methods.vocab_proj import explain_vocab_proj

METHODS: dict[str, Callable[..., list[str]]] = {
    "vocab_proj": explain_vocab_proj,
    "token_change": explain_token_change,
    "epo": explain_epo,
}

__all__ = ["METHODS", "ExplainMethod", "explain_epo", "explain_token_change", "explain_vocab_proj"]

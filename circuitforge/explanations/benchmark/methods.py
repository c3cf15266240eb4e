"""The benchmark's methods by name: each turns neurons into texts E (<= max_tokens tokens).

Built in here (they read the atlas and the Patchscope setting, `Setting`):
    m0_context     M0: the neuron's top atlas context, +-`radius` (8) tokens around its trigger
    m1_vector_x    M1: Vector X (the residual at that context's trigger, before `source_layer`)
                   decoded by the Patchscope against the baseline (the atlas README's method)
    m2_patchscope  M2: the gradient Patchscope: a vector optimised to drive the neuron to its atlas
                   maximum (the sweep's recipe: `circuitforge.explanations.optimise`), decoded the
                   same way
From `circuitforge.explanations.methods.METHODS` (`explain(model, layer, neurons, *, max_tokens,
**options)`): a name `mN_<key>` (or the bare key) picks METHODS[key], e.g. `m4_vocab_proj`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.atlas.documents import DocumentFormat
from circuitforge.data.texts import load_texts
from circuitforge.explanations.atlas_view import AtlasView, context_residuals
from circuitforge.explanations.methods import METHODS
from circuitforge.explanations.optimise import ChunkState, initial_rows, optimise_chunk
from circuitforge.model import hooks
from circuitforge.model.tokenizer import decode, encode, tokenizer_of
from circuitforge.patchscope.generation import patchscope_decode
from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.prompt import PlaceholderPrompt
from circuitforge.patchscope.recipe import Recipe


@dataclass(frozen=True)
class Setting:
    """What M0-M2 read: the atlas, and the Patchscope (injection, decoding, optimisation)."""

    view: AtlasView
    source_layer: int
    prompt: PlaceholderPrompt  # X is optimised here (M2)
    target_prompt: PlaceholderPrompt  # X is decoded here (M1, M2, the mean-vector control)
    baseline: Float[Tensor, " d_model"]
    typical_norm: float
    alpha: float = 1.5
    new_tokens: int = 20
    decode_batch_size: int = 64
    recipe: Recipe = Recipe()
    steps: int = 50


def fit_tokens(model: HookedTransformer, text: str, max_tokens: int) -> str:
    """`text` cut to its first `max_tokens` tokens (re-encoded without special tokens)."""
    tokenizer = tokenizer_of(model)
    (ids,) = encode(tokenizer, [text], add_special_tokens=False)
    return text if len(ids) <= max_tokens else decode(tokenizer, ids[:max_tokens])


def decode_vectors(
    model: HookedTransformer, setting: Setting, x: Float[Tensor, "n d_model"], neurons: list[int],
    layer: int,
) -> list[str]:  # fmt: skip
    """The contrastive Patchscope decoding of each vector (against the baseline)."""
    out: list[str] = []
    b = setting.decode_batch_size
    for start in range(0, len(x), b):
        decoded = patchscope_decode(
            model, setting.target_prompt, setting.source_layer, x[start : start + b],
            setting.baseline, layer, neurons[start : start + b], setting.alpha, setting.new_tokens,
        )  # fmt: skip
        out += decoded.contrastive_text
    return out


def explain_context(
    model: HookedTransformer, layer: int, neurons: list[int], *, max_tokens: int = 24,
    setting: Setting, radius: int = 8,
) -> list[str]:  # fmt: skip
    view, tokenizer = setting.view, tokenizer_of(model)
    tops = [view.contexts(n)[0] if view.contexts(n) else None for n in neurons]
    wanted = [t["text_index"] for t in tops if t is not None]
    texts = (
        load_texts(view.data["source"], max(wanted) + 1, view.data.get("text_field", "text"))
        if wanted
        else []
    )
    fmt = DocumentFormat(view.data["max_tokens"], view.data["prepend_bos"])
    out = []
    for top in tops:
        if top is None:
            out.append("")
            continue
        ids = fmt.token_ids(tokenizer, texts[top["text_index"]])
        first = 1 if fmt.prepend_bos else 0
        pos = top["token_position"]
        window = ids[max(first, pos - radius) : pos + radius + 1]
        out.append(fit_tokens(model, decode(tokenizer, window), max_tokens))
    return out


def explain_vector_x(
    model: HookedTransformer, layer: int, neurons: list[int], *, max_tokens: int = 24,
    setting: Setting,
) -> list[str]:  # fmt: skip
    residuals = context_residuals(
        model, setting.view, neurons, hooks.resid_pre(setting.source_layer)
    )
    x = torch.stack([residuals[n][0] if len(residuals[n]) else setting.baseline for n in neurons])
    texts = decode_vectors(model, setting, x.to(setting.baseline), neurons, layer)
    return [fit_tokens(model, t, max_tokens) for t in texts]


def explain_patchscope(
    model: HookedTransformer, layer: int, neurons: list[int], *, max_tokens: int = 24,
    setting: Setting,
) -> list[str]:  # fmt: skip
    objective = NeuronObjective(model, setting.prompt, setting.source_layer, layer)
    start = initial_rows(setting.baseline, setting.typical_norm, [0], 0.0).repeat(len(neurons), 1)
    state = ChunkState(list(neurons), [0] * len(neurons), 0, start, {}, [])
    targets = torch.tensor([setting.view.natural_max(n) for n in neurons])
    state = optimise_chunk(
        objective, state, setting.steps, setting.recipe, setting.typical_norm, targets
    )
    texts = decode_vectors(model, setting, state.x.to(setting.baseline), neurons, layer)
    return [fit_tokens(model, t, max_tokens) for t in texts]


BUILT_IN: dict[str, Callable[..., list[str]]] = {
    "m0_context": explain_context,
    "m1_vector_x": explain_vector_x,
    "m2_patchscope": explain_patchscope,
}


def resolve(name: str) -> tuple[Callable[..., list[str]], bool]:
    """(the method, whether it reads the `Setting`); one ValueError line for an unknown name."""
    if name in BUILT_IN:
        return BUILT_IN[name], True
    key = re.sub(r"^m\d+_", "", name)
    if key in METHODS:
        return METHODS[key], False
    known = [*BUILT_IN, *(f"{k}" for k in METHODS)]
    raise ValueError(f"methods: unknown method {name!r}; known: {', '.join(known)}")

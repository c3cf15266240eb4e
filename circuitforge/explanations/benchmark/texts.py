"""A chunk's texts: each method's E per neuron, then the controls built from them.

`chunk_texts` runs the methods in order and calls `on_method` after each (the run saves its
progress there); a method already in `done` (an interrupted chunk's) is not run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformer_lens import HookedTransformer

from circuitforge.explanations.benchmark.controls import partners, shuffled
from circuitforge.explanations.benchmark.methods import Setting, decode_vectors, resolve


@dataclass(frozen=True)
class MethodPlan:
    """The methods (config names, in order), their own options, and the controls' base."""

    names: list[str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    control_base: str | None = None  # None: no controls
    max_tokens: int = 24

    def __post_init__(self) -> None:
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"methods: at least one, each once; got {self.names}")
        for name in self.names:
            resolve(name)  # an unknown name: one line
        extra = sorted(set(self.options) - set(self.names))
        if extra:
            raise ValueError(f"method_options: {extra} not among the methods {self.names}")
        if self.control_base is not None and self.control_base not in self.names:
            raise ValueError(f"control_base {self.control_base!r} is not among the methods")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")


def chunk_texts(
    model: HookedTransformer, layer: int, neurons: list[int], plan: MethodPlan, setting: Setting,
    chunk_seed: int, done: dict[str, list[str]] | None = None,
    seconds: dict[str, float] | None = None,
    on_method: Callable[[dict[str, list[str]], dict[str, float]], None] | None = None,
) -> tuple[dict[str, list[str]], dict[str, float]]:  # fmt: skip
    """(texts per method and control, seconds per method for the whole chunk)."""
    texts = dict(done or {})
    spent = dict(seconds or {})
    for name in plan.names:
        if name in texts:
            continue
        method, reads_setting = resolve(name)
        extra = {"setting": setting} if reads_setting else {}
        started = time.perf_counter()
        found = method(
            model, layer, list(neurons), max_tokens=plan.max_tokens,
            **plan.options.get(name, {}), **extra,
        )  # fmt: skip
        spent[name] = time.perf_counter() - started
        if len(found) != len(neurons):
            raise ValueError(f"method {name} gave {len(found)} texts for {len(neurons)} neurons")
        texts[name] = list(found)
        if on_method is not None:
            on_method(texts, spent)
    if plan.control_base is not None:
        base = texts[plan.control_base]
        at = {n: i for i, n in enumerate(neurons)}
        pairs = partners(neurons, chunk_seed)
        mean = decode_vectors(model, setting, setting.baseline[None], [neurons[0]], layer)[0]
        texts["control_random_neuron"] = [base[at[pairs[n][0]]] for n in neurons]
        texts["control_mean_vector"] = [mean] * len(neurons)
        texts["control_shuffled"] = [shuffled(model, base[at[n]], n) for n in neurons]
    return texts, spent

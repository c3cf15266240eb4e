"""The injection scale a vector is decoded at, chosen by a rule that reads only its neuron.

Self-explanation of SAE features found the scale of the injected vector decides what is read
out. Here each vector x is tried at a few scales s (s x x injected at the reading prompt's
placeholder, the prefill only); the rule takes, per vector, the smallest scale at which its
neuron (read at the placeholder of the reading prompt, as in the decoding's prefill) reaches its
target, or the scale where the neuron is largest when none does. No score of the decoded text
(S1-S4) is read.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.patchscope.objective import NeuronObjective
from circuitforge.patchscope.prompt import PlaceholderPrompt


def check_scales(scales: list[float]) -> list[float]:
    if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"injection_scales: one or more positive numbers, got {scales}")
    return sorted(scales)


@torch.no_grad()
def scaled_activations(
    objective: NeuronObjective,
    vectors: Float[Tensor, "batch d_model"],
    neurons: Int[Tensor, " batch"],
    scales: list[float],
) -> Float[Tensor, "scale batch"]:
    """The neuron of each row at the reading prompt's placeholder, s x vector injected."""
    return torch.stack([objective(s * vectors, neurons).float().cpu() for s in scales])


def pick_scales(
    activations: Float[Tensor, "scale batch"],
    targets: Float[Tensor, " batch"],
    scales: list[float],
) -> Float[Tensor, " batch"]:
    """Per row: the smallest scale whose activation reaches the target, else the argmax."""
    reached = activations >= targets[None].to(activations)
    first = reached.float().argmax(0)  # the first scale (ascending) that reaches it
    best = activations.argmax(0)
    index = torch.where(reached.any(0), first, best)
    return torch.tensor(scales)[index]


def choose_scales(
    model: HookedTransformer,
    prompt: PlaceholderPrompt,
    source_layer: int,
    target_layer: int,
    vectors: Float[Tensor, "batch d_model"],
    neurons: list[int],
    targets: Float[Tensor, " batch"],
    scales: list[float],
) -> Float[Tensor, " batch"]:
    """`pick_scales` on the reading prompt: the scale each vector is decoded at."""
    scales = check_scales(scales)
    if scales == [1.0]:
        return torch.ones(len(neurons))
    objective = NeuronObjective(model, prompt, source_layer, target_layer)
    acts = scaled_activations(objective, vectors, torch.tensor(neurons), scales)
    return pick_scales(acts, targets, scales)

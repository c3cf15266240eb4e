"""The quantity the residual vector is optimised for: one MLP neuron's activation.

`NeuronObjective` caches the prompt's residual stream up to the source layer once, then each
call injects the vectors and runs only blocks S..T (the layers that can change the neuron),
instead of the whole model the original notebooks ran at every step.

With `cached_prefix=True` it also caches, once, the keys and values of blocks S..T at the
positions before the placeholder (the vectors cannot change them: attention is causal), and
each call runs those blocks on the placeholder's position alone (the neuron is read there, so
the positions after it do not matter either): the same activation, one position of work in
place of the prompt's length (`tests/test_sweep_speed.py`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.model.forward import embed, new_kv_cache, run_blocks, shared_prefix_cache
from circuitforge.model.hooks import mlp_post
from circuitforge.patchscope.injection import inject_at_position
from circuitforge.patchscope.prompt import PlaceholderPrompt


def check_layers_and_neurons(
    model: HookedTransformer, source_layer: int, target_layer: int, neurons: list[int]
) -> None:
    n_layers, d_mlp = model.cfg.n_layers, model.cfg.d_mlp
    if not 0 <= source_layer < n_layers:
        raise ValueError(
            f"source_layer {source_layer} out of range: the model has {n_layers} layers"
        )
    if not 0 <= target_layer < n_layers:
        raise ValueError(
            f"target_layer {target_layer} out of range: the model has {n_layers} layers"
        )
    if source_layer > target_layer:
        raise ValueError(
            f"source_layer {source_layer} is after target_layer {target_layer}: a vector injected "
            "there cannot change the target neuron"
        )
    if not neurons:
        raise ValueError("give at least one target neuron")
    bad = [n for n in neurons if not 0 <= n < (d_mlp or 0)]
    if bad:
        raise ValueError(f"neuron(s) {bad} out of range: the MLP of this model has {d_mlp} neurons")


class NeuronObjective:
    """Activation of `blocks.{T}.mlp.hook_post[position, neuron]` with vectors injected at S."""

    def __init__(
        self,
        model: HookedTransformer,
        prompt: PlaceholderPrompt,
        source_layer: int,
        target_layer: int,
        cached_prefix: bool = False,
    ) -> None:
        self.model, self.prompt = model, prompt
        self.source_layer, self.target_layer = source_layer, target_layer
        self.cache = None  # cached_prefix: keys and values of blocks S..T before the placeholder
        with torch.no_grad():
            residual, self.mask = embed(model, prompt.tokens)
            self.prefix = run_blocks(model, residual, 0, source_layer, self.mask)
            if cached_prefix:
                position = prompt.position
                self.cache = new_kv_cache(model, 1)
                before = None if self.mask is None else self.mask[:, :position]
                if position > 0:  # else nothing comes before the placeholder: an empty cache
                    run_blocks(
                        model, self.prefix[:, :position], source_layer, target_layer + 1,
                        before, self.cache,
                    )  # fmt: skip

    @property
    def device(self) -> torch.device:
        return self.prefix.device

    def layer_activations(
        self, vectors: Float[Tensor, "batch d_model"]
    ) -> Float[Tensor, "batch d_mlp"]:
        """Every neuron of `blocks.{T}.mlp.hook_post` at the placeholder, vectors injected."""
        batch, position = vectors.shape[0], self.prompt.position
        mask = None if self.mask is None else self.mask.expand(batch, -1)
        cache = None
        if self.cache is None:
            residual = inject_at_position(self.prefix.expand(batch, -1, -1), vectors, position)
        else:  # the placeholder's position alone, over the cached keys and values before it
            one = self.prefix[:, position : position + 1].expand(batch, -1, -1)
            residual = inject_at_position(one, vectors, 0)
            mask = None if mask is None else mask[:, : position + 1]
            cache = shared_prefix_cache(self.cache, batch)
            position = 0
        captured: dict[str, Tensor] = {}

        def capture(post: Tensor, hook) -> None:
            captured["post"] = post[:, position]

        with self.model.hooks(fwd_hooks=[(mlp_post(self.target_layer), capture)]):
            run_blocks(self.model, residual, self.source_layer, self.target_layer + 1, mask, cache)
        return captured["post"]

    def __call__(
        self, vectors: Float[Tensor, "batch d_model"], neurons: Int[Tensor, " batch"]
    ) -> Float[Tensor, " batch"]:
        post = self.layer_activations(vectors)
        return post.gather(1, neurons.to(post.device)[:, None])[:, 0].float()


class CarrierObjective:
    """The mean over several carrier prompts of `NeuronObjective` (the same vectors injected at
    each prompt's placeholder): X is optimised to drive the neuron in every one of them, the
    reading prompt among them where the recipe lists it."""

    def __init__(self, carriers: list[NeuronObjective]) -> None:
        if not carriers:
            raise ValueError("carrier prompts: give at least one")
        self.carriers = carriers

    @property
    def device(self) -> torch.device:
        return self.carriers[0].device

    def layer_activations(
        self, vectors: Float[Tensor, "batch d_model"]
    ) -> Float[Tensor, "batch d_mlp"]:
        return torch.stack([c.layer_activations(vectors).float() for c in self.carriers]).mean(0)

    def __call__(
        self, vectors: Float[Tensor, "batch d_model"], neurons: Int[Tensor, " batch"]
    ) -> Float[Tensor, " batch"]:
        post = self.layer_activations(vectors)
        return post.gather(1, neurons.to(post.device)[:, None])[:, 0]


def neuron_objective(
    model: HookedTransformer,
    prompts: list[PlaceholderPrompt],
    source_layer: int,
    target_layer: int,
    cached_prefix: bool = False,
) -> NeuronObjective | CarrierObjective:
    """One prompt: `NeuronObjective` (the old single-prompt recipe, unchanged); several: their
    mean (`CarrierObjective`). `cached_prefix`: see `NeuronObjective`."""
    objectives = [
        NeuronObjective(model, p, source_layer, target_layer, cached_prefix) for p in prompts
    ]
    return objectives[0] if len(objectives) == 1 else CarrierObjective(objectives)

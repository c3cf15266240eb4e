"""Where each part of the frozen model lives: a device plan, and moving the model to it.

Blocks are split into contiguous, near-equal runs, as TransformerLens splits them
(`index * n_devices // n_layers`); the embedding sits with block 0, the final norm and the
unembedding with the last block. TransformerLens 3.9's own `n_devices` placement puts every
block on one device while its forward moves the residual by formula, so we place the model
ourselves and run it with `circuitforge.model.forward`, which follows the real placement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformer_lens import HookedTransformer

_INPUT_MODULES = {"embed", "hook_embed", "pos_embed", "hook_pos_embed"}


@dataclass(frozen=True)
class DevicePlan:
    """Device of every block, plus where the input (embedding) and output (unembedding) live."""

    blocks: tuple[torch.device, ...]

    @classmethod
    def split(cls, n_layers: int, devices: Sequence[str | torch.device]) -> DevicePlan:
        if not devices:
            raise ValueError("a device plan needs at least one device")
        devs = [torch.device(d) for d in devices]
        if len(devs) > n_layers:
            raise ValueError(f"cannot split {n_layers} layers over {len(devs)} devices")
        return cls(tuple(devs[i * len(devs) // n_layers] for i in range(n_layers)))

    @property
    def input_device(self) -> torch.device:
        return self.blocks[0]

    @property
    def output_device(self) -> torch.device:
        return self.blocks[-1]

    def device_of_layer(self, layer: int) -> torch.device:
        return self.blocks[layer]


def plan_of(model: HookedTransformer) -> DevicePlan:
    """The plan the model is actually placed on (read from its parameters)."""
    return DevicePlan(tuple(next(b.parameters()).device for b in model.blocks))


def place_model(model: HookedTransformer, plan: DevicePlan) -> HookedTransformer:
    """Move the model's parts to the plan's devices (in place; returns the model)."""
    if len(plan.blocks) != model.cfg.n_layers:
        raise ValueError(f"plan has {len(plan.blocks)} blocks, model has {model.cfg.n_layers}")
    for name, module in model.named_children():
        if name == "blocks":
            continue
        module.to(plan.input_device if name in _INPUT_MODULES else plan.output_device)
    for block, device in zip(model.blocks, plan.blocks):
        block.to(device)
    # TransformerLens puts tokens and masks on cfg.device; keep that the embedding's device and
    # stop its forward from moving the residual by its own formula.
    model.cfg.device = str(plan.input_device)
    model.cfg.n_devices = 1
    return model

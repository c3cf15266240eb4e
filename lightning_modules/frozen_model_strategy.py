"""A strategy that places the frozen model across devices and the intervention beside it.

Lightning moves the LightningModule to one root device; our frozen model is not a registered
submodule (so it is never moved back, nor saved), and this strategy places it block by block
(`circuitforge.model.placement`) before any setup hook runs, so the datamodule's baseline
already runs on the devices. The trainable tensors go to the device of the layer they are
injected into (`module.injection_layer`). Checkpoints are written atomically
(`AtomicCheckpointIO`).
"""

from __future__ import annotations

import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from circuitforge.model.placement import DevicePlan, place_model
from lightning_modules.atomic_checkpoint_io import AtomicCheckpointIO


class FrozenModelStrategy(SingleDeviceStrategy):
    strategy_name = "frozen_model"

    def __init__(self, devices: list[str] | None = None, **kwargs) -> None:
        """Args:
        devices: devices to split the frozen model's blocks over, in order, e.g.
            `[cuda:0, cuda:1]`; default `[cpu]`.
        """
        self.plan_devices = [str(d) for d in (devices or ["cpu"])]
        kwargs["checkpoint_io"] = kwargs.get("checkpoint_io") or AtomicCheckpointIO()
        super().__init__(device=torch.device(self.plan_devices[0]), **kwargs)
        self.plan: DevicePlan | None = None

    def setup_environment(self) -> None:
        super().setup_environment()
        frozen = getattr(self.lightning_module, "frozen_model", None)
        if frozen is not None:
            self.plan = DevicePlan.split(frozen.cfg.n_layers, self.plan_devices)
            place_model(frozen, self.plan)

    def model_to_device(self) -> None:
        layer = getattr(self.lightning_module, "injection_layer", None)
        device = self.root_device
        if self.plan is not None and layer is not None:
            device = self.plan.device_of_layer(layer)
        assert self.model is not None
        self.model.to(device)

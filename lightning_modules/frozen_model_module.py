"""FrozenModelModule: the shared shell of every module built around a frozen language model.

It loads the model once from its spec (`load_frozen_model`, memoised per process) and holds it
outside nn.Module registration (`Unregistered`): the frozen weights are never in a checkpoint's
`state_dict` (so no `strict_loading` or `state_dict` filtering is needed) and Lightning never
moves them; `FrozenModelStrategy` places the blocks and puts the module's own tensors beside
`injection_layer`. What the run is (its settings and the digest of these weights) is computed
once by `train.py` from `spec` (`circuitforge.checkpoints.experiment_settings`); subclasses keep
no identity of their own.
"""

from __future__ import annotations

import lightning as L
from transformer_lens import HookedTransformer

from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from lightning_modules.frozen_holder import Unregistered


class FrozenModelModule(L.LightningModule):
    EXPERIMENT = "frozen_model"

    def __init__(self, model: FrozenModelSpec) -> None:
        super().__init__()
        self.spec = model
        self._frozen = Unregistered(load_frozen_model(model))

    @property
    def frozen_model(self) -> HookedTransformer:
        return self._frozen.model

    @property
    def injection_layer(self) -> int:
        """The layer whose device the module's own tensors go to (`FrozenModelStrategy`)."""
        return 0

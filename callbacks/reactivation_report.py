"""ReactivationReport: does Vector X, moved out of its context, still drive its neuron?

For a `validate` run of `ResidualVectorModule` with `init: atlas`. The SAE decomposition and
the Patchscope decoding are the `SAEDecomposition` and `PatchscopeGeneration` callbacks of the
same run (they must be listed too); this callback joins their results with the atlas context
into `results/reactivation.json`: `source_layer`, `target_prompt`, `vectors` (the names) and, as
lists in the order of `vectors`, `neuron`, `layer`, `text_index`, `token_position`,
`trigger_token`, `original_activation` (the neuron at its trigger), `patched_activation` (the
neuron at the target prompt's placeholder with X injected), `top_features`, `plain_text`,
`contrastive_text`.
"""

from __future__ import annotations

from typing import TypeVar

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from callbacks.patchscope_generation import PatchscopeGeneration
from callbacks.result_callback import ResultCallback
from callbacks.sae_decomposition import SAEDecomposition
from circuitforge.results import per_vector
from lightning_modules.residual_vector import ResidualVectorModule
from lightning_modules.trainer_access import callbacks_of, module_of

Found = TypeVar("Found", bound=L.Callback)


def _one(callbacks: list[L.Callback], kind: type[Found]) -> Found:
    found = [c for c in callbacks if isinstance(c, kind)]
    if len(found) != 1:
        raise ValueError(
            f"ReactivationReport reads the results of one {kind.__name__} callback; the run has "
            f"{len(found)}: list it in trainer.callbacks"
        )
    return found[0]


class ReactivationReport(ResultCallback):
    result_name = "reactivation"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not module_of(pl_module, ResidualVectorModule, self).atlas_seeds:
            raise ValueError("ReactivationReport needs ResidualVectorModule with init: atlas")
        self.sae = _one(callbacks_of(trainer), SAEDecomposition)
        self.patchscope = _one(callbacks_of(trainer), PatchscopeGeneration)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != TrainerFn.VALIDATING:
            return
        module = module_of(pl_module, ResidualVectorModule, self)
        sae, scope = self.sae.history[-1], self.patchscope.history[-1]
        names = module.vector_names()
        if sae["vectors"] != names or scope["vectors"] != names:
            raise RuntimeError("the SAE and Patchscope results are not of this run's vectors")
        by_neuron = {seed.entry.neuron: seed for seed in module.atlas_seeds}
        seeds = [by_neuron[neuron] for neuron in module.vector_neurons]
        patched = scope["prefill_activation"]
        result = {
            "source_layer": module.source_layer,
            "target_prompt": scope["target_prompt"],
            **per_vector(
                names,
                neuron=module.vector_neurons,
                layer=[s.entry.layer for s in seeds],
                text_index=[s.entry.text_index for s in seeds],
                token_position=[s.entry.token_position for s in seeds],
                trigger_token=[s.entry.trigger_token for s in seeds],
                original_activation=[s.original_activation for s in seeds],
                atlas_activation=[s.entry.activation for s in seeds],
                patched_activation=patched,
                patched_over_original=[
                    p / s.original_activation if s.original_activation else None
                    for p, s in zip(patched, seeds)
                ],
                top_features=sae["top_features"],
                plain_text=scope["plain_text"],
                contrastive_text=scope["contrastive_text"],
            ),
        }
        self.write(trainer, result)

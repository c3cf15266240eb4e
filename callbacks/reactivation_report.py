"""ReactivationReport: does Vector X, moved out of its context, still drive its neuron?

For a `validate` run of `ResidualVectorModule` with `init: atlas`. The SAE decomposition and
the Patchscope decoding are the `SAEDecomposition` and `PatchscopeGeneration` callbacks of the
same run (they must be listed too); this callback joins their results with the atlas context
into `results/reactivation.json`: `neuron`, `layer`, `text_index`, `token_position`,
`trigger_token`, `original_activation` (the neuron at its trigger), `patched_activation` (the
neuron at the target prompt's placeholder with X injected), `top_features`, `plain_text`,
`contrastive_text`.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from callbacks.patchscope_generation import PatchscopeGeneration
from callbacks.result_callback import ResultCallback
from callbacks.sae_decomposition import SAEDecomposition


def _one(callbacks: list, kind: type):
    found = [c for c in callbacks if isinstance(c, kind)]
    if len(found) != 1:
        raise ValueError(
            f"ReactivationReport reads the results of one {kind.__name__} callback; the run has "
            f"{len(found)}: list it in trainer.callbacks"
        )
    return found[0]


class ReactivationReport(ResultCallback):
    result_name = "reactivation"

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        if not getattr(pl_module, "atlas_seeds", None):
            raise ValueError("ReactivationReport needs ResidualVectorModule with init: atlas")
        self.sae = _one(trainer.callbacks, SAEDecomposition)
        self.patchscope = _one(trainer.callbacks, PatchscopeGeneration)

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.state.fn != TrainerFn.VALIDATING:
            return
        sae, scope = self.sae.history[-1], self.patchscope.history[-1]
        seeds = {seed.entry.neuron: seed for seed in pl_module.atlas_seeds}
        names = pl_module.vector_names()
        per_vector = []
        for j, neuron in enumerate(pl_module.vector_neurons):

            def pick(values, j=j):  # the callbacks unwrap single-vector lists
                return values if len(names) == 1 else values[j]

            seed, entry = seeds[neuron], seeds[neuron].entry
            patched = pick(scope["prefill_activation"])
            per_vector.append(
                {
                    "vector": names[j],
                    "neuron": neuron,
                    "layer": entry.layer,
                    "source_layer": pl_module.source_layer,
                    "text_index": entry.text_index,
                    "token_position": entry.token_position,
                    "trigger_token": entry.trigger_token,
                    "original_activation": seed.original_activation,
                    "atlas_activation": entry.activation,
                    "patched_activation": patched,
                    "patched_over_original": patched / seed.original_activation
                    if seed.original_activation
                    else None,
                    "target_prompt": scope["target_prompt"],
                    "top_features": pick(sae["top_features"]),
                    "plain_text": pick(scope["plain_text"]),
                    "contrastive_text": pick(scope["contrastive_text"]),
                }
            )
        self.write(trainer, per_vector[0] if len(per_vector) == 1 else {"vectors": per_vector})

"""OptimizationReport: `results/optimization.json`, the activation curve of the optimised X.

Per-vector fields are lists in the order of `vectors` (the vector names), one vector or many.
"""

from __future__ import annotations

import lightning as L

from callbacks.result_callback import ResultCallback
from circuitforge.results import per_vector
from lightning_modules.residual_vector import ResidualVectorModule
from lightning_modules.trainer_access import module_of


class OptimizationReport(ResultCallback):
    result_name = "optimization"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = module_of(pl_module, ResidualVectorModule, self)
        history = module.activation_history  # [step][vector]
        if not history:
            return
        result = {
            "source_layer": module.source_layer,
            "target_layer": module.target_layer,
            "steps": len(history),
            "baseline_norm": float(module.baseline.norm()),
            **per_vector(
                module.vector_names(),
                neuron=module.vector_neurons,
                seed=module.vector_seeds,
                initial_activation=history[0],
                final_activation=module.current_activations(),  # after the last update
                activation_history=[list(v) for v in zip(*history)],
                x_norm=module.X.detach().norm(dim=-1).tolist(),
            ),
        }
        self.write(trainer, result)

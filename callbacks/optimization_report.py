"""OptimizationReport: `results/optimization.json`, the activation curve of the optimised X."""

from __future__ import annotations

import lightning as L

from callbacks.result_callback import ResultCallback


def _per_vector(values: list, single: bool):
    return values[0] if single else values


class OptimizationReport(ResultCallback):
    result_name = "optimization"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        history = pl_module.activation_history  # [step][vector]
        if not history:
            return
        single = len(pl_module.vector_neurons) == 1
        per_vector = [list(v) for v in zip(*history)]
        final = pl_module.current_activations()  # after the last update
        result = {
            "source_layer": pl_module.source_layer,
            "target_layer": pl_module.target_layer,
            "neuron": _per_vector(pl_module.vector_neurons, single),
            "seed": _per_vector(pl_module.vector_seeds, single),
            "steps": len(history),
            "initial_activation": _per_vector(history[0], single),
            "final_activation": _per_vector(final, single),
            "activation_history": _per_vector(per_vector, single),
            "x_norm": _per_vector(pl_module.X.detach().norm(dim=-1).tolist(), single),
            "baseline_norm": float(pl_module.baseline.norm()),
        }
        self.write(trainer, result)

"""LanguageModelEvaluation: what the pretrained demo model has learned, at every validation end.

Writes `results/language_model.json`: loss per topic on new documents of the training frames
(`validation_loss`) and on held-out frames (`heldout_loss`), IOI accuracy with held-out names
and/or templates, greater-than accuracy on held-out nouns. The same
numbers go to TensorBoard as `eval/...` scalars.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from callbacks.result_callback import ResultCallback
from circuitforge.demo_world.corpus import greater_than_prompts, ioi_prompts
from circuitforge.demo_world.evaluation import (
    greater_than_accuracy,
    ioi_accuracy,
    loss_per_topic,
)


def evaluate_language_model(model, heldout_documents, n_prompts: int, seed: int) -> dict[str, Any]:
    """Loss per topic and split; IOI on held-out names and/or templates; greater-than."""
    was_training = model.training
    model.eval()
    split = {s: [d for d in heldout_documents if d.split == s] for s in ("validation", "heldout")}
    ioi_sets = {  # (held-out names, held-out templates)
        "ioi_heldout_names_and_templates": (True, True),
        "ioi_heldout_names_training_templates": (True, False),
        "ioi_training_names_heldout_templates": (False, True),
        "ioi_training_names_and_templates": (False, False),
    }
    with torch.no_grad():
        result: dict[str, Any] = {
            "validation_loss": loss_per_topic(model, split["validation"]),
            "heldout_loss": loss_per_topic(model, split["heldout"]),
        }
        for name, (names, templates) in ioi_sets.items():
            prompts = ioi_prompts(n_prompts, seed, heldout=names, heldout_templates=templates)
            result[name] = ioi_accuracy(model, prompts)
        result["greater_than_heldout_nouns"] = greater_than_accuracy(
            model, greater_than_prompts(n_prompts, seed)
        )
    model.train(was_training)
    return result


class LanguageModelEvaluation(ResultCallback):
    result_name = "language_model"

    def __init__(self, n_prompts: int = 500, seed: int = 1234) -> None:
        """Args:
        n_prompts: IOI and greater-than prompts per evaluation set.
        seed: seed of the evaluation prompts (the same at every epoch).
        """
        super().__init__()
        self.n_prompts, self.seed = n_prompts, seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        pl_module.tied_unembedding()
        result = evaluate_language_model(
            pl_module.model, trainer.datamodule.heldout_documents, self.n_prompts, self.seed
        )
        self.write(trainer, result)
        for split in ("validation_loss", "heldout_loss"):
            for topic, loss in result[split].items():
                pl_module.log(f"eval/{split}/{topic}", loss)
        for name, value in result.items():
            if name.startswith("ioi_"):
                pl_module.log(f"eval/{name}/accuracy", value["accuracy"])
        pl_module.log(
            "eval/greater_than/accuracy", result["greater_than_heldout_nouns"]["accuracy"]
        )

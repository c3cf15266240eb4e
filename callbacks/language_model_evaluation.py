"""LanguageModelEvaluation: what the pretrained demo model has learned, at every validation end.

Writes `results/language_model.json`: loss per topic on new documents of the training frames
(`validation_loss`) and on held-out frames (`heldout_loss`), IOI accuracy with held-out names
and/or templates, greater-than accuracy on held-out nouns. The same
numbers go to TensorBoard as `eval/...` scalars.
"""

from __future__ import annotations

import lightning as L

from callbacks.result_callback import ResultCallback
from circuitforge.demo_world.evaluation import evaluate_language_model
from datamodules.demo_corpus import DemoCorpusDataModule
from lightning_modules.language_model_pretraining import LanguageModelPretraining
from lightning_modules.trainer_access import datamodule_of, module_of


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
        module = module_of(pl_module, LanguageModelPretraining, self)
        data = datamodule_of(trainer, DemoCorpusDataModule, self)
        module.tied_unembedding()
        result = evaluate_language_model(
            module.language_model, data.heldout_documents, self.n_prompts, self.seed
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

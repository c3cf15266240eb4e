"""SAEDecomposition: the top SAE features of X, from the SAE that reads where X is injected.

`results/sae_decomposition.json`: per-vector fields are lists in the order of `vectors`.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from callbacks.result_callback import ResultCallback
from circuitforge.results import markdown_table, per_vector
from circuitforge.sae.decomposition import decompose
from circuitforge.sae.matching import MatchedSAE, SAESource, load_matching_sae
from lightning_modules.residual_vector import ResidualVectorModule
from lightning_modules.trainer_access import module_of


class SAEDecomposition(ResultCallback):
    result_name = "sae_decomposition"

    def __init__(self, sae: SAESource, top_k: int = 10) -> None:
        """Args:
        sae: the SAE (pretrained release/id or local path; `{layer}` picks the matching layer).
        top_k: how many features to report.
        """
        super().__init__()
        self.source, self.top_k = sae, top_k
        self.matched: MatchedSAE | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Load and check the SAE before any optimisation, so a mismatch fails at once.
        if self.matched is None:
            module = module_of(pl_module, ResidualVectorModule, self)
            self.matched = load_matching_sae(
                self.source, module.injection_hook, module.frozen_model.cfg.d_model
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report(trainer, module_of(pl_module, ResidualVectorModule, self))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # `validate`: X as it is
            self.report(trainer, module_of(pl_module, ResidualVectorModule, self))

    def report(self, trainer: L.Trainer, module: ResidualVectorModule) -> None:
        matched = self.matched
        assert matched is not None
        decomposed = [decompose(matched, v, self.top_k) for v in module.X.detach()]
        names = module.vector_names()
        result = {
            "sae": matched.name,
            "hook_name": matched.hook_name,
            "injected_at": module.injection_hook,
            **per_vector(
                names,
                top_features=[d["top_features"] for d in decomposed],
                norm_fraction_topk=[d["norm_fraction_topk"] for d in decomposed],
                norm_fraction_all=[d["norm_fraction_all"] for d in decomposed],
                n_active=[d["n_active"] for d in decomposed],
            ),
        }
        self.write(trainer, result)
        writer = self.tensorboard(trainer)
        if writer is not None:
            for name, d in zip(names, decomposed):
                table = markdown_table(d["top_features"], ["feature", "activation", "url"])
                header = f"SAE `{matched.name}` reads `{matched.hook_name}`\n\n"
                writer.add_text(f"sae_features/{name}", header + table, trainer.global_step)

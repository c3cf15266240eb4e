"""SAEDecomposition: the top SAE features of X, from the SAE that reads where X is injected."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from callbacks.result_callback import ResultCallback
from circuitforge.results import markdown_table
from circuitforge.sae.decomposition import decompose
from circuitforge.sae.matching import MatchedSAE, SAESource, load_matching_sae


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

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        # Load and check the SAE before any optimisation, so a mismatch fails at once.
        if self.matched is None:
            model = pl_module.frozen_model
            self.matched = load_matching_sae(
                self.source, pl_module.injection_hook, model.cfg.d_model
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        self.report(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # `validate`: X as it is
            self.report(trainer, pl_module)

    def report(self, trainer: L.Trainer, pl_module) -> None:
        assert self.matched is not None
        vectors = pl_module.X.detach()
        per_vector = [decompose(self.matched, v, self.top_k) for v in vectors]
        single = len(per_vector) == 1
        result = {
            "sae": self.matched.name,
            "hook_name": self.matched.hook_name,
            "injected_at": pl_module.injection_hook,
            "vectors": pl_module.vector_names(),
            "top_features": per_vector[0]["top_features"]
            if single
            else [d["top_features"] for d in per_vector],
            "norm_fraction_topk": [d["norm_fraction_topk"] for d in per_vector],
            "norm_fraction_all": [d["norm_fraction_all"] for d in per_vector],
            "n_active": [d["n_active"] for d in per_vector],
        }
        self.write(trainer, result)
        writer = self.tensorboard(trainer)
        if writer is not None:
            for name, d in zip(pl_module.vector_names(), per_vector):
                table = markdown_table(d["top_features"], ["feature", "activation", "url"])
                header = f"SAE `{self.matched.name}` reads `{self.matched.hook_name}`\n\n"
                writer.add_text(f"sae_features/{name}", header + table, trainer.global_step)

"""EdgeCoefficientsModule: one learned coefficient per edge of the frozen model's graph.

The coefficients (through a parameterisation: clamp, sigmoid or hard-concrete) are the only
trainable parameters. Each step: one ablation run without gradients (the corrupted prompts),
one masked forward with every coefficient applied (`circuitforge.edges.masked_forward`), loss =
task faithfulness (logit difference to the full model's, or KL to its output) + a sparsity term
that pushes the expected fraction of kept edges below a target lowered over
`sparsity_warmup_steps`. The `CircuitExport` callback makes the circuit discrete and evaluates
it at every epoch end.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from circuitforge.ablation import Ablation, check_ablation
from circuitforge.batches import PairBatch
from circuitforge.edges import parameterisation as param
from circuitforge.edges.graph import EdgeGraph, GraphShape
from circuitforge.edges.keep_rule import KeepRule
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.objectives import keep_metric_for, kl_to_full, logit_difference
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.numerics import check_finite
from lightning_modules.frozen_model_module import FrozenModelModule

Objective = Literal["logit_diff", "kl", "mse"]


class EdgeCoefficientsModule(FrozenModelModule):
    EXPERIMENT = "edge_coefficients"

    def __init__(
        self,
        model: FrozenModelSpec,
        split_qkv: bool = True,
        include_mlp: bool = True,
        per_position: int | None = None,
        ablation: str = "interchange",  # checked here, so a bad name is refused in one line
        parameterisation: param.Parameterisation = "sigmoid",
        objective: Objective = "logit_diff",
        lr: float = 0.1,
        sparsity_weight: float = 1.0,
        target_density: float = 0.0,
        sparsity_warmup_steps: int = 100,
        keep_edges: int | None = None,
        keep_threshold: float = 0.5,
        keep_kl: float | None = None,
        keep_metric: str = "auto",
        prune_kept: bool = False,
    ) -> None:
        """Args:
        model: the frozen language model.
        split_qkv: separate edges into each head's Q, K and V inputs.
        include_mlp: MLPs are nodes (else they always carry their clean-run values).
        per_position: one edge per token position, for prompts of exactly this many tokens.
        ablation: what a removed edge carries: `interchange` (the corrupted prompt's
            activations), `zero` or `mean` (over the batch).
        parameterisation: `clamp` (straight-through, the original), `sigmoid`, `hard_concrete`.
        objective: `logit_diff` (|LD(circuit) - LD(full)| / |LD(full)|) or `kl` (to the full
            model's output at the read positions), or `mse` (of the read logits; for tracr
            programs, whose 0/1 logits make the KL nearly flat).
        lr: Adam learning rate of the coefficient parameters.
        sparsity_weight: weight of the sparsity term.
        target_density: final target fraction of kept edges (expected); the target falls
            linearly from 1 to this over `sparsity_warmup_steps`.
        keep_edges: the discrete circuit keeps this many top edges; None = every edge whose
            coefficient is >= `keep_threshold`.
        keep_kl: instead, keep the fewest top-scoring edges whose discrete circuit is within
            this distance of the full model on the validation pairs (binary search over the
            count), the distance being `keep_metric`'s.
        keep_metric: `kl` (nats, at the read positions), `mse` (mean squared read outputs), or
            `auto`: mse for a model with one output (a numerical tracr program, where every KL
            is 0), else kl.
        prune_kept: after the keep_kl search, remove kept edges one at a time (lowest score
            first) while the circuit stays within keep_kl, until every edge left is needed.
            One masked forward per try: for small graphs (tracr), not for GPT-2's 32k edges.
        """
        checked_ablation = check_ablation(ablation)  # the settings first, then the model
        if objective not in ("logit_diff", "kl", "mse"):
            raise ValueError(f"objective must be logit_diff, kl or mse, got {objective!r}")
        kind = param.check(parameterisation)
        if prune_kept and keep_kl is None:
            raise ValueError("prune_kept needs keep_kl: the distance the pruned circuit keeps")
        super().__init__(model)
        self.save_hyperparameters()
        self.ablation: Ablation = checked_ablation
        self.objective: Objective = objective
        self.kind: param.Parameterisation = kind
        self.lr, self.sparsity_weight = lr, sparsity_weight
        self.target_density, self.sparsity_warmup_steps = target_density, sparsity_warmup_steps
        self.keep_edges, self.keep_threshold, self.keep_kl = keep_edges, keep_threshold, keep_kl
        self.prune_kept = prune_kept
        frozen = self.frozen_model
        self.keep_metric = keep_metric_for(frozen.cfg.d_vocab_out, keep_metric)
        if objective == "kl" and frozen.cfg.d_vocab_out == 1:
            raise ValueError(
                "objective kl on a model with one output: the KL of a one-logit softmax is 0 "
                "for every circuit, so nothing would be learned; use objective: mse"
            )
        self.graph = EdgeGraph(GraphShape.of(frozen), split_qkv, include_mlp, per_position)
        self.masked_forward = MaskedForward(frozen, self.graph)
        self.theta = nn.Parameter(param.initial_parameters(self.kind, len(self.graph.edges)))
        self._full: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "bind_model"):
            raise ValueError(
                "EdgeCoefficientsModule needs a prompt-pair datamodule (PromptPairDataModule)"
            )
        datamodule.bind_model(self.frozen_model)

    def coefficients(self, sample: bool = False) -> torch.Tensor:
        return param.coefficients(self.kind, self.theta, sample)

    def scores(self) -> torch.Tensor:
        """Higher = more in the circuit: the parameter itself (monotone in the coefficient)."""
        return self.theta.detach().clone()

    def importance(self) -> torch.Tensor:
        """The score MIB ranks: the keep probability (>= 0, as UGS's scores are), sigmoid(theta)
        in float64 (strictly monotone in theta: every ranking is theta's, and MIB's |score|
        ranking for CMD does not put the surest-removed edges first), theta itself for clamp."""
        theta = self.theta.detach().double()
        return theta.clone() if self.kind == "clamp" else torch.sigmoid(theta)

    @property
    def keep_rule(self) -> KeepRule:
        """How the discrete circuit is chosen from `scores` (read by `CircuitExport`)."""
        return KeepRule(
            n_edges=self.keep_edges,
            max_distance=self.keep_kl,
            threshold=self.keep_threshold,
            metric=self.keep_metric,  # type: ignore[arg-type]  # checked: kl or mse
            prune=self.prune_kept,
        )

    # --- optimisation ------------------------------------------------------------------------
    def _full_model(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The full model's logits at the read positions and logit difference, cached per
        example (the model is frozen, so they never change)."""
        missing = [i for i in batch.index.tolist() if i not in self._full]
        if missing:
            with torch.no_grad():
                logits = self.frozen_model(batch.clean)
            for row, i in enumerate(batch.index.tolist()):
                if i in missing:
                    read = batch.read[row : row + 1]
                    ld = None
                    if batch.answer[row] >= 0:
                        ld = logit_difference(
                            logits[row : row + 1],
                            read,
                            batch.answer[row : row + 1],
                            batch.wrong_answer[row : row + 1],
                        )
                    self._full[i] = (logits[row : row + 1][read], ld)
        rows = [self._full[i] for i in batch.index.tolist()]
        lds = [ld for _, ld in rows if ld is not None]  # None: the task has no answer tokens
        return torch.cat([lp for lp, _ in rows]), torch.cat(lds) if len(lds) == len(rows) else None

    def target(self) -> float:
        progress = min(1.0, self.global_step / max(1, self.sparsity_warmup_steps))
        return 1.0 - (1.0 - self.target_density) * progress

    def training_step(self, batch: PairBatch, batch_idx: int) -> torch.Tensor:
        full_logits, full_ld = self._full_model(batch)
        with torch.no_grad():
            if self.ablation == "interchange":
                ablated = self.masked_forward.record(batch.corrupt)[0]
            else:
                ablated = self.masked_forward.ablation(
                    self.ablation, self.masked_forward.record(batch.clean)[0], None
                )
        coefficients = self.coefficients(sample=True)
        grid = dense_coefficients(self.graph, coefficients)
        logits = self.masked_forward(batch.clean, ablated, grid)
        if self.objective == "kl":
            full_log_probs = torch.log_softmax(full_logits.float(), dim=-1)
            faithfulness_loss = kl_to_full(full_log_probs, logits, batch.read).mean()
        elif self.objective == "mse":
            faithfulness_loss = (logits[batch.read] - full_logits).pow(2).mean()
        else:
            if full_ld is None:
                raise ValueError("this task has no answer tokens: use objective: kl")
            ld = logit_difference(logits, batch.read, batch.answer, batch.wrong_answer)
            faithfulness_loss = (ld - full_ld).abs().mean() / full_ld.abs().mean().clamp_min(1e-6)
        density = param.density(self.kind, self.theta)
        target = self.target()
        sparsity_loss = self.sparsity_weight * torch.relu(density - target)
        loss = faithfulness_loss + sparsity_loss
        check_finite(self.global_step, f"Lower lr (now {self.lr}).", loss=loss)
        self.log_dict(
            {
                "train/loss": loss,
                "train/faithfulness_loss": faithfulness_loss,
                "train/density": density,
                "train/target_density": target,
                "train/edges_kept": (self.coefficients() >= self.keep_threshold).sum().float(),
            },
            on_step=True,
            on_epoch=False,
            prog_bar=True,
        )
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        param.project(self.kind, self.theta)
        check_finite(self.global_step, f"Lower lr (now {self.lr}).", coefficients=self.theta)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([self.theta], lr=self.lr)

"""EdgeCoefficientsModule: one learned coefficient per edge of the frozen model's graph.

The coefficients (through a parameterisation: clamp, sigmoid, hard-concrete or UGS) are the
trainable parameters (with a Lagrangian sparsity term, its two multipliers too). Each step: one
ablation run without gradients (the corrupted prompts), one masked forward with every
coefficient applied (`circuitforge.edges.masked_forward`), loss = task faithfulness (logit
difference to the full model's, or KL to its output) + a sparsity term towards a target
sparsity (`circuitforge.edges.sparsity`: relu or Lagrangian, target ramped). Optionally the
parameters start from EAP scores (`circuitforge.edges.warm_start`), and the run walks down
nested budgets (`circuitforge.edges.budgets`) so that one run gives every MIB circuit. The
`CircuitExport` callback makes the circuit discrete and evaluates it at every epoch end.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from torch import nn

from circuitforge.ablation import Ablation, check_ablation
from circuitforge.batches import PairBatch
from circuitforge.edges import parameterisation as param
from circuitforge.edges.budgets import NestedBudgets, drop_outside_budget, nested_importance
from circuitforge.edges.evaluation import edge_attribution_scores
from circuitforge.edges.graph import EdgeGraph, GraphShape
from circuitforge.edges.keep_rule import KeepRule
from circuitforge.edges.masked_forward import MaskedForward, dense_coefficients
from circuitforge.edges.objectives import keep_metric_for, kl_to_full, logit_difference
from circuitforge.edges.prepared import PreparedBatch
from circuitforge.edges.sparsity import SparsityTerm, lagrangian_penalty, relu_penalty
from circuitforge.edges.warm_start import warm_start_parameters
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.numerics import check_finite
from lightning_modules.frozen_model_module import FrozenModelModule

Objective = Literal["logit_diff", "kl", "mse"]


class EdgeCoefficientsModule(FrozenModelModule):
    EXPERIMENT = "edge_coefficients"
    lambdas: nn.Parameter  # with a Lagrangian sparsity term
    dropped_at: torch.Tensor  # with nested budgets: the stage each edge was dropped at, or -1
    theta_at_drop: torch.Tensor

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
        sparsity: dict | None = None,
        warm_start: dict | str | None = None,
        budgets: dict | None = None,
        bf16: bool = False,
    ) -> None:
        """Args:
        model: the frozen language model.
        split_qkv: separate edges into each head's Q, K and V inputs.
        include_mlp: MLPs are nodes (else they always carry their clean-run values).
        per_position: one edge per token position, for prompts of exactly this many tokens.
        ablation: what a removed edge carries: `interchange` (the corrupted prompt's
            activations), `zero` or `mean` (over the batch).
        parameterisation: `clamp` (straight-through, the original), `sigmoid`, `hard_concrete`
            (Edge Pruning's gates), `ugs` (UGS's sampled keep probabilities).
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
        sparsity: the sparsity term as a dictionary (`circuitforge.edges.sparsity.SparsityTerm`:
            kind relu|lagrangian, target (sparsity, >= 0), start, warmup_steps, weight,
            lambda_lr); replaces sparsity_weight / target_density / sparsity_warmup_steps,
            which mean {kind: relu, target: 1 - target_density, weight, warmup_steps}.
        warm_start: start the parameters from per-edge scores on the training pairs: `eap`
            (edge attribution patching, one backward per batch) or `eap_ig`, or a dictionary
            {scores, sparsity (0.9), tau (0.2), mode (absolute), per_layer (true), n_batches}.
        budgets: nested budgets {fractions (MIB's), steps_per_budget}: each stage's target is
            its fraction; at its end the edges outside it are dropped for good, so the final
            ranking nests every budget's circuit.
        bf16: run the ablation run and the masked forward under CPU/GPU bf16 autocast.
        """
        checked_ablation = check_ablation(ablation)  # the settings first, then the model
        if objective not in ("logit_diff", "kl", "mse"):
            raise ValueError(f"objective must be logit_diff, kl or mse, got {objective!r}")
        kind = param.check(parameterisation)
        if prune_kept and keep_kl is None:
            raise ValueError("prune_kept needs keep_kl: the distance the pruned circuit keeps")
        if sparsity is None:
            term = SparsityTerm("relu", 1.0 - target_density, 0.0, sparsity_warmup_steps,
                                sparsity_weight)  # fmt: skip
        else:
            term = SparsityTerm.from_setting(sparsity)
        start = parse_warm_start(warm_start)
        nested = None if budgets is None else parse_budgets(budgets)
        super().__init__(model)
        self.save_hyperparameters()
        self.sparsity, self.warm_start, self.budgets, self.bf16 = term, start, nested, bf16
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
        n = len(self.graph.edges)
        self.theta = nn.Parameter(param.initial_parameters(self.kind, n))
        if term.kind == "lagrangian":
            self.lambdas = nn.Parameter(torch.zeros(2))
        if nested is not None:
            self.register_buffer("dropped_at", torch.full((n,), -1, dtype=torch.long))
            self.register_buffer("theta_at_drop", torch.zeros(n))
        self._full: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "bind_model"):
            raise ValueError(
                "EdgeCoefficientsModule needs a prompt-pair datamodule (PromptPairDataModule)"
            )
        datamodule.bind_model(self.frozen_model)
        resuming = getattr(self.trainer, "ckpt_path", None) is not None
        if stage == "fit" and self.warm_start is not None and not resuming:
            self.start_from_scores(datamodule)

    def start_from_scores(self, datamodule) -> None:
        """Set the parameters from per-edge scores on the training pairs (resumed runs keep
        their checkpoint's)."""
        started = time.perf_counter()
        options = dict(self.warm_start or {})
        batches = list(datamodule.test_dataloader())[: options.pop("n_batches", None)]
        prepared = [PreparedBatch(self.masked_forward, b, self.ablation) for b in batches]
        scores = edge_scores(options.pop("scores"), self.masked_forward, prepared, self.objective)
        theta = warm_start_parameters(self.graph, scores, self.kind, **options)
        with torch.no_grad():
            self.theta.copy_(theta.to(self.theta.device))
        self.warm_start_seconds = time.perf_counter() - started

    def coefficients(self, sample: bool = False) -> torch.Tensor:
        coefficients = param.coefficients(self.kind, self.theta, sample)
        if self.budgets is not None:
            coefficients = torch.where(self.dropped_at >= 0, 0.0, coefficients)
        return coefficients

    def scores(self) -> torch.Tensor:
        """Higher = more in the circuit: the parameter itself (monotone in the coefficient); with
        nested budgets the nested ranking (`nested_importance`)."""
        if self.budgets is not None:
            return self.importance().float()
        return self.theta.detach().clone()

    def importance(self) -> torch.Tensor:
        """The score MIB ranks: the keep probability (>= 0, as UGS's scores are), sigmoid(theta)
        in float64 (strictly monotone in theta: every ranking is theta's, and MIB's |score|
        ranking for CMD does not put the surest-removed edges first), theta itself for clamp;
        with nested budgets, the stage an edge was dropped at, then its parameter."""
        theta = self.theta.detach().double()
        if self.budgets is not None:
            n_stages = len(self.budgets.fractions)
            return nested_importance(theta, self.dropped_at, self.theta_at_drop, n_stages)
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
        """The target density (1 - the target sparsity) at this step."""
        if self.budgets is not None:
            return self.budgets.fraction_at(self.global_step)
        return 1.0 - self.sparsity.target_at(self.global_step)

    def training_step(self, batch: PairBatch, batch_idx: int) -> torch.Tensor:
        full_logits, full_ld = self._full_model(batch)
        autocast = torch.autocast(self.theta.device.type, torch.bfloat16, enabled=self.bf16)
        with torch.no_grad(), autocast:
            if self.ablation == "interchange":
                ablated = self.masked_forward.record(batch.corrupt)[0]
            else:
                ablated = self.masked_forward.ablation(
                    self.ablation, self.masked_forward.record(batch.clean)[0], None
                )
        coefficients = self.coefficients(sample=True)
        grid = dense_coefficients(self.graph, coefficients)
        with autocast:
            logits = self.masked_forward(batch.clean, ablated, grid).float()
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
        if self.budgets is not None:  # dropped edges count as removed
            density = density - (param.coefficients(self.kind, self.theta, False)
                                 * (self.dropped_at >= 0)).mean()  # fmt: skip
        target = self.target()
        if self.sparsity.kind == "lagrangian":
            sparsity_loss = lagrangian_penalty(density, 1.0 - target, self.lambdas)
        else:
            sparsity_loss = relu_penalty(density, 1.0 - target, self.sparsity.weight)
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
        if self.budgets is not None:
            step = self.global_step - 1  # the step that just finished
            if self.budgets.ends_stage(step):
                stage = self.budgets.stage_at(step)
                drop_outside_budget(self.theta, self.dropped_at, self.theta_at_drop,
                                    self.budgets.descending[stage], stage)  # fmt: skip
            with torch.no_grad():
                floor = 0.0 if self.kind == "clamp" else -10.0
                self.theta[self.dropped_at >= 0] = floor
        check_finite(self.global_step, f"Lower lr (now {self.lr}).", coefficients=self.theta)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups: list[dict] = [{"params": [self.theta], "lr": self.lr}]
        if self.sparsity.kind == "lagrangian":  # gradient ascent on the multipliers
            groups.append(
                {"params": [self.lambdas], "lr": self.sparsity.lambda_lr, "maximize": True}
            )
        return torch.optim.Adam(groups, lr=self.lr)


WARM_START_SCORES = ("eap", "eap_ig")


def parse_warm_start(setting: dict | str | None) -> dict | None:
    """The warm-start setting as a dictionary with its score name checked (one-line errors)."""
    if setting is None:
        return None
    options = {"scores": setting} if isinstance(setting, str) else dict(setting)
    if options.get("scores") not in WARM_START_SCORES:
        raise ValueError(
            f"warm_start scores must be one of {WARM_START_SCORES}, got {options.get('scores')!r}"
        )
    known = {"scores", "sparsity", "tau", "mode", "per_layer", "n_batches"}
    if set(options) - known:
        raise ValueError(f"warm_start: unknown setting(s) {sorted(set(options) - known)}")
    return options


def parse_budgets(setting: dict) -> NestedBudgets:
    known = {"fractions", "steps_per_budget"}
    if set(setting) - known:
        raise ValueError(f"budgets: unknown setting(s) {sorted(set(setting) - known)}")
    fractions = setting.get("fractions")
    return NestedBudgets(
        tuple(fractions) if fractions is not None else NestedBudgets.fractions,
        setting.get("steps_per_budget", 10),
    )


def edge_scores(
    name: str, forward: MaskedForward, prepared: list[PreparedBatch], objective: str
) -> torch.Tensor:
    """Per-edge scores by name: `eap` (ours, `edge_attribution_scores`) or `eap_ig` (the peers'
    `eap_ig_scores`)."""
    with torch.enable_grad():
        if name == "eap":
            return edge_attribution_scores(forward, prepared, objective)
        try:
            from circuitforge.edges.peers import eap_ig_scores  # type: ignore[attr-defined]
        except ImportError as error:
            raise ValueError(f"warm_start eap_ig: no eap_ig_scores yet ({error})") from None
        return eap_ig_scores(forward, prepared, objective)

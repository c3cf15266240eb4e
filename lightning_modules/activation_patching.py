"""ActivationPatchingModule: patching sweeps and attribution patching over prompt pairs (test).

`python train.py test --config configs/analysis/demo_patching.yaml`. Each test step runs every
sweep (resid_pre / attn_out / mlp_out per layer x position; z / q / k / v per layer x head) in
each direction on one batch of pairs, exactly (`patched_metric`, many cells per forward) and by
attribution patching (`attribution_estimates`, one forward/backward). The epoch end normalises
the sums over all pairs (0 = corrupted, 1 = clean), correlates the estimates with the exact
values, and (with `circuit:`) sets the heads that matter beside an edge circuit's heads.
"""

from __future__ import annotations

import numpy as np
import torch

from circuitforge.analysis.cells import (
    PER_LAYER,
    PER_POSITION,
    SWEEP_KINDS,
    SweepKind,
    check_kind,
    grid_shape,
    sweep_cells,
)
from circuitforge.analysis.compare import (
    compare_heads,
    head_effects,
    position_labels,
    read_circuit_heads,
)
from circuitforge.analysis.patching import (
    DIRECTIONS,
    Direction,
    attribution_estimates,
    normalised,
    patched_metric,
)
from circuitforge.analysis.pictures import attribution_scatter, sweep_heatmaps
from circuitforge.analysis.runs import answer_logit_difference, final_residual
from circuitforge.batches import PairBatch
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.results import AnalysisResult
from lightning_modules.frozen_model_analysis import FrozenModelAnalysis


class ActivationPatchingModule(FrozenModelAnalysis):
    EXPERIMENT = "activation_patching"

    def __init__(
        self,
        model: FrozenModelSpec,
        sweeps: list[SweepKind] | None = None,
        directions: list[Direction] | None = None,
        attribution: bool = True,
        cells_per_forward: int = 16,
        circuit: str | None = None,
        head_threshold: float = 0.05,
        top_heads: int = 10,
        progress: bool = False,
    ) -> None:
        """Args:
        model: the frozen language model.
        sweeps: which sweeps (resid_pre, attn_out, mlp_out per layer x position; attn_layer,
            mlp_layer per layer, every position at once; z, q, k, v per head); default all.
        directions: denoising (clean into corrupted) and/or noising (corrupted into clean);
            default both.
        attribution: also estimate every sweep by attribution patching, and correlate.
        cells_per_forward: cells patched in one forward pass (the batch is repeated this often).
        circuit: an edge circuit's `circuit.json` (a `*` picks the newest) to compare heads with.
        head_threshold: a head "matters" when patching its z moves the normalised logit
            difference by at least this much (either direction).
        top_heads: how many of the strongest heads the comparison lists.
        progress: a progress bar over the forward passes of each sweep.
        """
        super().__init__(model)
        self.save_hyperparameters()
        sweeps = list(SWEEP_KINDS) if sweeps is None else sweeps
        directions = list(DIRECTIONS) if directions is None else directions
        if not sweeps or not directions:
            raise ValueError("need at least one sweep and one direction")
        for kind in sweeps:
            check_kind(self.frozen_model, kind)
        for direction in directions:
            if direction not in DIRECTIONS:
                raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if cells_per_forward < 1:
            raise ValueError(f"cells_per_forward must be at least 1, got {cells_per_forward}")
        self.sweeps, self.directions, self.attribution = list(sweeps), list(directions), attribution
        self.cells_per_forward, self.circuit, self.progress = cells_per_forward, circuit, progress
        self.head_threshold, self.top_heads = head_threshold, top_heads
        if circuit is not None and "z" not in self.sweeps:
            raise ValueError("circuit: the comparison reads the z (head output) sweep; add z")

    def on_test_start(self) -> None:
        if self.circuit is not None:  # fail before the sweeps, not after them
            read_circuit_heads(self.circuit)

    def on_test_epoch_start(self) -> None:
        self.n_positions = self.pairs.clean.shape[1]
        self.cells = {k: sweep_cells(self.frozen_model, k, self.n_positions) for k in self.sweeps}
        zero = torch.zeros(())  # sums of [cells] tensors
        self.exact = {(d, k): zero for d in self.directions for k in self.sweeps}
        self.estimate = dict(self.exact)
        self.totals = {"clean": 0.0, "corrupt": 0.0, "pairs": 0}

    def analyse(self, batch: PairBatch) -> None:
        model = self.frozen_model
        batch = batch.padded_to(self.n_positions)  # the collate cut unused padding
        with torch.no_grad():
            clean = answer_logit_difference(model, final_residual(model, batch.clean), batch)
            corrupt = answer_logit_difference(model, final_residual(model, batch.corrupt), batch)
        self.totals["clean"] += clean.sum().item()
        self.totals["corrupt"] += corrupt.sum().item()
        self.totals["pairs"] += len(clean)
        # Every sweep of a direction in one call: one source run and one cached target run
        # serve them all, and a layer's cells of every kind share the forward passes.
        cells = [cell for kind in self.sweeps for cell in self.cells[kind]]
        lengths = [len(self.cells[kind]) for kind in self.sweeps]
        for direction in self.directions:
            found = patched_metric(
                model, batch, cells, direction, self.cells_per_forward, self.progress
            )
            for kind, part in zip(self.sweeps, found.split(lengths)):
                self.exact[direction, kind] = self.exact[direction, kind] + part.sum(1)
            if self.attribution:
                change, base = attribution_estimates(model, batch, cells, direction)
                for kind, part in zip(self.sweeps, (change + base).split(lengths)):
                    self.estimate[direction, kind] = self.estimate[direction, kind] + part.sum(1)
        self.log("test/logit_difference_clean", clean.mean(), batch_size=len(clean))

    def finish(self) -> AnalysisResult:
        n = self.totals["pairs"]
        clean, corrupt = self.totals["clean"] / n, self.totals["corrupt"] / n
        if abs(clean - corrupt) < 1e-6:
            raise ValueError(
                f"clean and corrupted runs have the same logit difference ({clean:.4f}): "
                "the normalised metric is undefined (is the task right for this model?)"
            )
        model = self.frozen_model
        grids, estimates, correlation = {}, {}, {}
        for (direction, kind), total in self.exact.items():
            shape = grid_shape(model, kind, self.n_positions)
            grids[direction, kind] = normalised(total / n, clean, corrupt).view(shape).numpy()
            if self.attribution:
                estimate = normalised(self.estimate[direction, kind] / n, clean, corrupt)
                estimates[direction, kind] = estimate.view(shape).numpy()
                correlation[f"{direction}/{kind}"] = _pearson(
                    grids[direction, kind], estimates[direction, kind]
                )
        for direction in self.directions if self.attribution else []:
            every = [(grids[d, k], estimates[d, k]) for d, k in grids if d == direction]
            correlation[f"{direction}/all"] = _pearson(
                np.concatenate([g.ravel() for g, _ in every]),
                np.concatenate([e.ravel() for _, e in every]),
            )
        labels, aligned = position_labels(self.str_tokens(self.pairs.clean, self.pairs.read))
        for name, r in correlation.items():
            if r is not None:
                self.log(f"test/attribution_correlation/{name}", r)
        json = {
            "metric": {
                "name": "normalised logit difference (0 = corrupted run, 1 = clean run)",
                "clean_logit_difference": clean,
                "corrupt_logit_difference": corrupt,
            },
            "pairs": n,
            "positions": labels,
            "positions_aligned": aligned,
            "sweeps": {
                d: {
                    k: {
                        "axes": ["layer", _AXIS.get(k, "head")],
                        "exact": grids[d, k].round(5).tolist(),
                        **(
                            {"attribution": estimates[d, k].round(5).tolist()}
                            if self.attribution
                            else {}
                        ),
                    }
                    for k in self.sweeps
                }
                for d in self.directions
            },
            "attribution_correlation": correlation,
        }
        if "z" in self.sweeps and self.circuit is not None:
            path, heads = read_circuit_heads(self.circuit)
            effects = head_effects(grids.get(("denoising", "z")), grids.get(("noising", "z")))
            json["circuit_comparison"] = {
                "circuit": str(path),
                **compare_heads(effects, heads, self.head_threshold, self.top_heads),
            }
        pictures = {}
        for d in self.directions:
            pictures[f"activation_patching_{d}"] = sweep_heatmaps(
                {k: grids[d, k] for k in self.sweeps},
                labels,
                f"activation patching, {d}",
                centre=_NO_EFFECT[d],
            )
            if self.attribution:
                pictures[f"attribution_patching_{d}"] = sweep_heatmaps(
                    {k: estimates[d, k] for k in self.sweeps},
                    labels,
                    f"attribution patching, {d}",
                    centre=_NO_EFFECT[d],
                )
                pictures[f"attribution_vs_exact_{d}"] = attribution_scatter(
                    {k: grids[d, k] for k in self.sweeps},
                    {k: estimates[d, k] for k in self.sweeps},
                    f"attribution vs exact patching, {d}",
                )
        table = "| sweep | r (attribution vs exact) |\n|---|---|\n" + "".join(
            f"| {name} | {'-' if r is None else f'{r:.3f}'} |\n" for name, r in correlation.items()
        )
        return AnalysisResult(json, pictures, tables={"attribution_correlation": table})


_AXIS = {k: "position" for k in PER_POSITION} | {k: "all positions" for k in PER_LAYER}
_NO_EFFECT = {"denoising": 0.0, "noising": 1.0}  # the normalised metric of an idle patch


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """None (JSON null) when either side is constant: no correlation is defined."""
    a, b = a.ravel(), b.ravel()
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])

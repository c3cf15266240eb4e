"""CircuitExport: at each epoch end, the discrete circuit, evaluated by the core
(`circuitforge.edges.evaluation.evaluate_circuit`), written as JSON, text, HTML and PNG.

Writes `{log_dir}/results/circuit.json` (`edges` with score and coefficient, `kept`,
`n_edges_total`, `metrics`: kl, logit_diff_recovered, faithfulness, and MIB's CPR and CMD when
swept; `sweep`: MIB's two curves, `signed` (CPR) and `absolute` (CMD), each with its points and
both areas; `ground_truth_match` when a true circuit is given; `comparison`: one entry per
method, ours first as "learned interpolation coefficients", then each peer of `compare`
(`circuitforge/edges/peers/`: random, eap, eap_ig_inputs, eap_ig_activations, exact) scored on
the same validation pairs by the same masked forward, with its `method` name, its circuit at our
size, MIB's CPR/CMD of its scores, its curves and its cost),
`circuit.txt` (`9.6 <- 0.10, 3.0` per destination), `circuit.png`, `circuit_mib.json` (the
scored edges in the EAP-IG / MIB circuit format) and `circuit_prune_scores.pt` (auto-circuit's
`PruneScores`; both in `circuitforge/edges/circuit_formats.py`); the same go to TensorBoard.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image

from callbacks.result_callback import ResultCallback
from circuitforge.atomic_files import torch_save_atomically, write_text_atomically
from circuitforge.edges.circuit_formats import (
    auto_circuit_prune_scores,
    mib_circuit,
    write_mib_circuit,
)
from circuitforge.edges.evaluation import (
    CircuitEvaluation,
    PeerReference,
    PreparedBatch,
    evaluate_circuit,
    peer_reference,
)
from circuitforge.edges.export import circuit_picture, circuit_text
from circuitforge.edges.faithfulness import MIB_FRACTIONS, check_fractions
from circuitforge.edges.ground_truth import load_true_edges
from circuitforge.edges.peers.eap_ig import MIB_IG_STEPS
from circuitforge.edges.peers.registry import PeerSettings, check_methods
from circuitforge.results import write_result
from circuitforge.viewer.graph_page import edge_graph, graph_page

DEFAULT_PEERS = ("random", "eap", "eap_ig_inputs")


class CircuitExport(ResultCallback):
    result_name = "circuit"

    def __init__(
        self,
        sweep: bool = True,
        compare: list[str] | None = None,
        ground_truth: str | None = None,
        ground_truth_key: str | None = None,
        fractions: list[float] | None = None,
        seed: int = 0,
        ig_steps: int = MIB_IG_STEPS,
        edges_per_pass: int = 32,
        compare_eap: bool | None = None,
    ) -> None:
        """Args:
        sweep: evaluate the MIB curve (0.1%..100% of edges by score) and report CPR and CMD.
        compare: the peer methods scored beside ours, each evaluated at our circuit's size and
            by MIB's curves: `random`, `eap`, `eap_ig_inputs`, `eap_ig_activations` (one
            forward+backward per layer node and step), `exact` (one forward per edge); default
            `[random, eap, eap_ig_inputs]` (seven forward+backward passes per batch); `[]` none.
        ground_truth: a JSON file listing the true edges (a tracr fixture's circuit.json).
        ground_truth_key: which list of that file is the truth; default `edges_{ablation}_ablation`
            (`edges_interchange_ablation`, ...) for the run's ablation.
        fractions: the fractions of edges of the MIB curves, each in (0, 1]; default MIB's
            0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50 and 100%.
        seed: the random ranking's seed.
        ig_steps: the integrated-gradient steps of both EAP-IG variants (MIB: 5).
        edges_per_pass: exact patching's edges per masked forward.
        compare_eap: the old setting, refused: use `compare`.
        """
        if compare_eap is not None:
            raise ValueError(
                "CircuitExport: compare_eap was replaced by compare, a list of peer methods "
                "(e.g. compare: [random, eap, eap_ig_inputs]; compare: [] for none)"
            )
        super().__init__()
        self.sweep = sweep
        self.compare = check_methods(DEFAULT_PEERS if compare is None else compare)
        self.ground_truth, self.ground_truth_key = ground_truth, ground_truth_key
        self.fractions = MIB_FRACTIONS if fractions is None else check_fractions(fractions)
        self.seed, self.ig_steps, self.edges_per_pass = seed, ig_steps, edges_per_pass
        PeerSettings(seed=seed, ig_steps=ig_steps, edges_per_pass=edges_per_pass)  # checked now
        self._prepared: list[PreparedBatch] | None = None
        self._peers: dict[str, PeerReference] = {}
        self._train_seconds, self._epoch_start = 0.0, None

    def prepared(self, trainer: L.Trainer, module) -> list[PreparedBatch]:
        if self._prepared is None:
            batches = trainer.datamodule.validation_batches()  # pyright: ignore[reportAttributeAccessIssue]
            self._prepared = [
                PreparedBatch(module.masked_forward, b, module.ablation) for b in batches
            ]
        return self._prepared

    def on_train_epoch_start(self, trainer: L.Trainer, module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        if self._epoch_start is not None:  # our training time, this evaluation left out
            self._train_seconds += time.perf_counter() - self._epoch_start
        evaluation = self.evaluate(trainer, module)
        for failure in evaluation.failures:
            rank_zero_warn(f"circuit at epoch {trainer.current_epoch}: {failure}")
        slim = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        self.history.append(slim | evaluation.metrics)
        log_dir = trainer.log_dir
        if trainer.is_global_zero and log_dir is not None:
            self.export(trainer, module, evaluation, log_dir)

    def evaluate(self, trainer: L.Trainer, module) -> CircuitEvaluation:
        prepared = self.prepared(trainer, module)
        settings = PeerSettings(
            module.objective, module.ablation, self.seed, self.ig_steps, self.edges_per_pass
        )
        for method in self.compare:  # the model is frozen: a peer's scores never change
            if method not in self._peers:
                self._peers[method] = peer_reference(
                    method,
                    module.masked_forward,
                    prepared,
                    settings,
                    module.keep_rule.metric,
                    self.sweep,
                    self.fractions,
                )
        truth = None
        if self.ground_truth is not None:
            key = self.ground_truth_key or f"edges_{module.ablation}_ablation"
            truth = load_true_edges(self.ground_truth, key)
        steps = trainer.global_step
        cost = {  # per step: the ablation run, the masked forward and its backward
            "steps": steps,
            "seconds_this_process": self._train_seconds,
            "fb_equivalents": steps * (1 + 1 + 2) / 3,
        }
        return evaluate_circuit(
            module.masked_forward,
            prepared,
            module.scores(),
            module.coefficients(),
            module.keep_rule,
            sweep=self.sweep,
            peers=[self._peers[method] for method in self.compare],
            truth=truth,
            fractions=self.fractions,
            importance=module.importance(),
            cost=cost,
        )

    def export(
        self, trainer: L.Trainer, module, evaluation: CircuitEvaluation, log_dir: str
    ) -> None:
        keep = evaluation.keep.tolist()
        result = evaluation.to_json()
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, **result}
        write_result(log_dir, self.result_name, entry, self.history)
        folder = Path(log_dir) / "results"
        text = circuit_text(module.graph, keep)
        write_text_atomically(folder / "circuit.txt", text)
        metrics = result["metrics"]
        summary = [f"{metrics['n_edges']} of {result['n_edges_total']} edges kept"]
        summary += [f"{k} {metrics[k]:.4g}" for k in ("kl", "mse", "logit_diff_recovered")
                    if isinstance(metrics.get(k), float)]  # fmt: skip
        if result.get("failure"):
            summary.append(f"failure: {result['failure']}")
        page = graph_page(f"edge circuit: {module.spec.describe()}", summary, edge_graph(result))
        write_text_atomically(folder / "circuit.html", page)
        try:  # the same scores as the EAP-IG / MIB circuit JSON, for other tools
            d_model = module.frozen_model.cfg.d_model
            circuit = mib_circuit(module.graph, d_model, evaluation.scores, keep)
            write_mib_circuit(folder / "circuit_mib.json", circuit)
            prune_scores = auto_circuit_prune_scores(module.graph, evaluation.scores)
            torch_save_atomically(folder / "circuit_prune_scores.pt", prune_scores)
        except ValueError as why:  # a per-position or merged-QKV graph has no MIB form
            rank_zero_warn(f"circuit_mib.json not written: {why}")
        picture = circuit_picture(module.graph, keep, evaluation.coefficients.tolist())
        Image.fromarray(picture).save(folder / "circuit.png")
        writer = self.tensorboard(trainer)
        if writer is not None:
            step = trainer.global_step
            for key, value in result["metrics"].items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"circuit/{key}", value, step)
            writer.add_text("circuit/text", "```\n" + text + "```", step)
            writer.add_image("circuit/graph", picture, step, dataformats="HWC")

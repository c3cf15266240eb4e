"""CircuitExport: at each epoch end, the discrete circuit, evaluated, as JSON, text and PNG.

Writes `{log_dir}/results/circuit.json` (`edges` with score and coefficient, `kept`,
`n_edges_total`, `metrics`: kl, logit_diff_recovered, faithfulness, cpr/cmd when swept;
`ground_truth_match` when a true circuit is given; `eap`: edge attribution patching computed
by the same masked forward, at the same circuit size), `circuit.txt` (`9.6 <- 0.10, 3.0` per
destination), `circuit.png`, `circuit_mib.json` (the scored edges in the EAP-IG / MIB circuit
format) and `circuit_prune_scores.pt` (auto-circuit's `PruneScores`; both in
`circuitforge/edges/circuit_formats.py`); the same go to TensorBoard.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torchmetrics.functional.classification import binary_auroc

from callbacks.result_callback import ResultCallback
from circuitforge.atomic_files import torch_save_atomically, write_text_atomically
from circuitforge.edges.circuit_formats import (
    auto_circuit_prune_scores,
    mib_circuit,
    write_mib_circuit,
)
from circuitforge.edges.discrete import node_names, prune_dead_ends, top_edges
from circuitforge.edges.evaluation import (
    PreparedBatch,
    circuit_failures,
    discrete_circuit,
    edge_attribution_scores,
    empty_distance,
    evaluate_coefficients,
    faithfulness_sweep,
)
from circuitforge.edges.export import circuit_picture, circuit_text, edge_rows
from circuitforge.results import write_result
from circuitforge.viewer.graph_page import edge_graph, graph_page


def load_true_edges(path: str, key: str) -> set[str]:
    """Edge names from a circuit.json (`{key: [{src, dest, channel}, ...]}`)."""
    data = json.loads(Path(path).read_text())
    if key not in data:
        raise KeyError(f"{path} has no {key!r}; it has {sorted(data)}")
    names = set()
    for e in data[key]:
        channel = e.get("channel")
        names.add(f"{e['src']}->{e['dest']}" + (f"[{channel}]" if channel else ""))
    return names


def ground_truth_match(edge_names: list[str], scores, keep, truth: set[str]) -> dict:
    unknown = truth - set(edge_names)
    if unknown:
        raise ValueError(f"true edges not in this graph: {sorted(unknown)[:5]}")
    kept = {n for n, k in zip(edge_names, keep.tolist()) if k}
    labels = torch.tensor([n in truth for n in edge_names])
    auc = (
        binary_auroc(scores.float(), labels.long()).item()
        if 0 < labels.sum() < len(labels)
        else None
    )
    return {
        "exact": kept == truth,
        "n_true": len(truth),
        "missing": sorted(truth - kept),
        "extra": sorted(kept - truth),
        "roc_auc": auc,
    }


def result_scores(result: dict) -> list[float]:
    return [row["score"] for row in result["edges"]]


class CircuitExport(ResultCallback):
    result_name = "circuit"

    def __init__(
        self,
        sweep: bool = True,
        compare_eap: bool = True,
        ground_truth: str | None = None,
        ground_truth_key: str | None = None,
    ) -> None:
        """Args:
        sweep: evaluate the MIB curve (0.1%..100% of edges by score) and report CPR and CMD.
        compare_eap: also score edges by edge attribution patching and evaluate its circuit
            of the same size (and its sweep).
        ground_truth: a JSON file listing the true edges (a tracr fixture's circuit.json).
        ground_truth_key: which list of that file is the truth; default `edges_{ablation}_ablation`
            (`edges_interchange_ablation`, ...) for the run's ablation.
        """
        super().__init__()
        self.sweep, self.compare_eap = sweep, compare_eap
        self.ground_truth, self.ground_truth_key = ground_truth, ground_truth_key
        self._prepared: list[PreparedBatch] | None = None
        self._eap_scores: torch.Tensor | None = None
        self._eap_curve: dict = {}

    def prepared(self, trainer: L.Trainer, module) -> list[PreparedBatch]:
        if self._prepared is None:
            batches = trainer.datamodule.validation_batches()
            self._prepared = [
                PreparedBatch(module.masked_forward, b, module.ablation) for b in batches
            ]
        return self._prepared

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        result = self.evaluate(trainer, module)
        slim = {"epoch": trainer.current_epoch, "step": trainer.global_step, **result["metrics"]}
        self.history.append(slim)
        if trainer.is_global_zero and trainer.log_dir is not None:
            self.export(trainer, module, result)

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, module) -> dict:
        forward, graph = module.masked_forward, module.graph
        prepared = self.prepared(trainer, module)
        scores = module.scores().cpu()
        coefficients = module.coefficients().detach().cpu()
        keep = discrete_circuit(
            forward,
            prepared,
            scores,
            coefficients,
            module.keep_edges,
            module.keep_kl,
            module.keep_threshold,
            module.keep_metric,
            module.prune_kept,
        )
        metrics = {
            "n_edges": int(keep.sum()),
            **evaluate_coefficients(forward, prepared, keep.float()),
        }
        metrics["keep_metric"] = module.keep_metric
        empty = empty_distance(prepared, module.keep_metric)
        failures = circuit_failures(int(keep.sum()), len(graph.edges), empty, module.keep_metric)
        for failure in failures:
            rank_zero_warn(f"circuit at epoch {trainer.current_epoch}: {failure}")
        metrics["faithfulness"] = metrics.get("logit_diff_recovered", None)
        result: dict = {"metrics": metrics, "failure": "; ".join(failures) or None}
        if self.sweep:
            curve = faithfulness_sweep(forward, prepared, scores, metric=module.keep_metric)
            metrics |= {"cpr": curve["cpr"], "cmd": curve["cmd"]}
            result["sweep"] = curve["points"]
        if self.compare_eap:
            if self._eap_scores is None:  # the model is frozen: EAP never changes
                with torch.enable_grad():
                    self._eap_scores = edge_attribution_scores(forward, prepared, module.objective)
                if self.sweep:
                    self._eap_curve = faithfulness_sweep(
                        forward, prepared, self._eap_scores, metric=module.keep_metric
                    )
            eap_keep = prune_dead_ends(graph, top_edges(self._eap_scores, int(keep.sum())))
            eap = {
                "n_edges": int(eap_keep.sum()),
                **evaluate_coefficients(forward, prepared, eap_keep.float()),
            }
            if self.sweep:
                eap |= {"cpr": self._eap_curve["cpr"], "cmd": self._eap_curve["cmd"]}
            eap["nodes"] = node_names(graph, eap_keep)
            result["eap"] = eap
        names = [e.name for e in graph.edges]
        if self.ground_truth is not None:
            key = self.ground_truth_key or f"edges_{module.ablation}_ablation"
            truth = load_true_edges(self.ground_truth, key)
            result["ground_truth_match"] = ground_truth_match(names, scores, keep, truth)
            if self.compare_eap:
                result["eap"]["ground_truth_match"] = ground_truth_match(
                    names, self._eap_scores, eap_keep, truth
                )
        result |= {
            "graph": graph.describe(),
            "nodes": node_names(graph, keep),
            "kept": [n for n, k in zip(names, keep.tolist()) if k],
            "n_edges_total": len(names),
            "edges": edge_rows(graph, scores, coefficients, keep),
            "_keep": keep,
            "_coefficients": coefficients,
        }
        return result

    def export(self, trainer: L.Trainer, module, result: dict) -> None:
        keep, coefficients = result.pop("_keep"), result.pop("_coefficients")
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, **result}
        write_result(trainer.log_dir, self.result_name, entry, self.history)
        folder = Path(trainer.log_dir) / "results"
        text = circuit_text(module.graph, keep.tolist())
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
            circuit = mib_circuit(
                module.graph, module.frozen_model.cfg.d_model, result_scores(result), keep.tolist()
            )
            write_mib_circuit(folder / "circuit_mib.json", circuit)
            prune_scores = auto_circuit_prune_scores(module.graph, result_scores(result))
            torch_save_atomically(folder / "circuit_prune_scores.pt", prune_scores)
        except ValueError as why:  # a per-position or merged-QKV graph has no MIB form
            rank_zero_warn(f"circuit_mib.json not written: {why}")
        picture = circuit_picture(module.graph, keep.tolist(), coefficients.tolist())
        Image.fromarray(picture).save(folder / "circuit.png")
        writer = self.tensorboard(trainer)
        if writer is not None:
            step = trainer.global_step
            for key, value in result["metrics"].items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"circuit/{key}", value, step)
            writer.add_text("circuit/text", "```\n" + text + "```", step)
            writer.add_image("circuit/graph", picture, step, dataformats="HWC")

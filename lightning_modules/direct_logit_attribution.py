"""DirectLogitAttributionModule: each head's and MLP's direct share of the answer (a test run).

`python train.py test --config configs/analysis/demo_dla.yaml`. Each test step decomposes the
final residual of every clean prompt at its read position (`direct_logit_attribution`: the final
norm's scale frozen, the logits taken before any soft-cap); the epoch end averages the shares
over all pairs and draws them.
"""

from __future__ import annotations

import numpy as np
import torch

from circuitforge.analysis.direct_logit import Target, direct_logit_attribution
from circuitforge.analysis.pictures import dla_figure
from circuitforge.batches import PairBatch
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.results import AnalysisResult, markdown_table
from lightning_modules.frozen_model_analysis import FrozenModelAnalysis


class DirectLogitAttributionModule(FrozenModelAnalysis):
    EXPERIMENT = "direct_logit_attribution"

    def __init__(self, model: FrozenModelSpec, target: Target = "logit_difference") -> None:
        """Args:
        model: the frozen language model.
        target: `logit_difference` (answer - wrong answer) or `answer` (the answer's logit).
        """
        super().__init__(model)
        self.save_hyperparameters()
        if target not in ("logit_difference", "answer"):
            raise ValueError(f"target must be logit_difference or answer, got {target!r}")
        self.target: Target = target

    def on_test_epoch_start(self) -> None:
        self.found: list = []

    def analyse(self, batch: PairBatch) -> None:
        with torch.no_grad():
            found = direct_logit_attribution(self.frozen_model, batch, self.target)
        self.found.append(found)
        self.log(f"test/{self.target}", found.model_value.mean(), batch_size=len(found.shares))

    def finish(self) -> AnalysisResult:
        names = self.found[0].names
        shares = torch.cat([f.shares for f in self.found]).cpu()
        constant = torch.cat([f.constant for f in self.found]).cpu()
        before = torch.cat([f.before_softcap for f in self.found]).cpu()
        model_value = torch.cat([f.model_value for f in self.found]).cpu()
        mean = shares.mean(0)
        cfg = self.frozen_model.cfg
        heads = np.zeros((cfg.n_layers, cfg.n_heads))
        others = {}
        for name, value in zip(names, mean.tolist()):
            if name[0].isdigit() and name.split(".")[1].isdigit():
                layer, head = map(int, name.split("."))
                heads[layer, head] = value
            else:
                others[name] = value
        others["biases"] = constant.mean().item()
        cap = cfg.output_logits_soft_cap
        json = {
            "target": self.target,
            "position": "each prompt's read position (the last prompt token)",
            "pairs": len(shares),
            "final_norm": "scale frozen at its value on each prompt",
            "softcap": (
                f"the shares decompose the logits before the output soft-cap "
                f"({cap} * tanh(x / {cap})), which is not linear; `model_value` is after it"
                if cap and cap > 0
                else None
            ),
            "before_softcap": before.mean().item(),
            "model_value": model_value.mean().item(),
            "constant": constant.mean().item(),
            "shares": {n: round(v, 6) for n, v in zip(names, mean.tolist())},
            "heads": heads.round(6).tolist(),
            "per_pair_spread": {n: round(v, 6) for n, v in zip(names, shares.std(0).tolist())},
        }
        rows = sorted(
            ({"piece": n, "share": round(v, 4)} for n, v in zip(names, mean.tolist())),
            key=lambda r: -abs(r["share"]),
        )[:30]
        title = (
            f"direct logit attribution, {self.target}: pieces sum to {json['before_softcap']:.3f}"
        )
        if json["softcap"]:
            title += f" before the soft-cap (the model's: {json['model_value']:.3f})"
        largest = {r["piece"]: r["share"] for r in rows[:15]}
        picture = dla_figure(heads, others, largest, title)
        return AnalysisResult(
            json,
            pictures={"direct_logit_attribution": picture},
            tables={"direct_logit_attribution": markdown_table(rows, ["piece", "share"])},
        )

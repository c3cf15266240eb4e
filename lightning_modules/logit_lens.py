"""LogitLensModule: the answer's rank and probability after every layer (a test run).

`python train.py test --config configs/analysis/demo_logit_lens.yaml`. Each test step reads the
residual stream of every clean prompt after each layer through the final norm and unembedding
(`logit_lens`); the epoch end reports, per layer, the answer's mean probability and median rank
over all prompts, and for the first `prompts_shown` prompts their top-k tokens.
"""

from __future__ import annotations

import numpy as np
import torch

from circuitforge.analysis.logit_lens import logit_lens
from circuitforge.analysis.pictures import lens_figure
from circuitforge.batches import PairBatch
from circuitforge.model.spec import FrozenModelSpec
from circuitforge.results import AnalysisResult
from lightning_modules.frozen_model_analysis import FrozenModelAnalysis


class LogitLensModule(FrozenModelAnalysis):
    EXPERIMENT = "logit_lens"

    def __init__(self, model: FrozenModelSpec, top_k: int = 5, prompts_shown: int = 4) -> None:
        """Args:
        model: the frozen language model.
        top_k: tokens listed per layer for each shown prompt.
        prompts_shown: prompts whose own curves and top-k tokens are reported.
        """
        super().__init__(model)
        self.save_hyperparameters()
        if top_k < 1 or prompts_shown < 0:
            raise ValueError(
                f"need top_k >= 1 and prompts_shown >= 0, got {top_k}, {prompts_shown}"
            )
        self.top_k, self.prompts_shown = top_k, prompts_shown

    def on_test_epoch_start(self) -> None:
        self.ranks, self.probabilities, self.wrong, self.shown = [], [], [], []

    def analyse(self, batch: PairBatch) -> None:
        lens = logit_lens(self.frozen_model, batch.clean, batch.read)
        answer, wrong = batch.answer.cpu(), batch.wrong_answer.cpu()
        self.stages = lens.stages
        self.ranks.append(lens.ranks(answer))
        self.probabilities.append(lens.probabilities(answer))
        self.wrong.append(lens.probabilities(wrong))
        room = self.prompts_shown - len(self.shown)
        if room > 0:
            values, ids = lens.top_k(self.top_k)
            texts = self.texts(batch.clean.cpu(), batch.read.cpu())
            for i in range(min(room, len(answer))):
                self.shown.append(self._prompt(i, texts[i], answer, lens, values, ids))

    def _prompt(self, i, text, answer, lens, values, ids) -> dict:
        to_str = self.frozen_model.to_single_str_token
        return {
            "prompt": text,
            "answer": to_str(int(answer[i])),
            "answer_rank": lens.ranks(answer)[:, i].tolist(),
            "answer_probability": [round(p, 6) for p in lens.probabilities(answer)[:, i].tolist()],
            "top_k": [
                [
                    {"token": to_str(int(t)), "probability": round(float(p), 6)}
                    for t, p in zip(ids[s, i], values[s, i])
                ]
                for s in range(len(lens.stages))
            ],
        }

    def finish(self) -> AnalysisResult:
        ranks = torch.cat(self.ranks, dim=1).float()
        probabilities = torch.cat(self.probabilities, dim=1)
        wrong = torch.cat(self.wrong, dim=1)
        mean_p, wrong_p = probabilities.mean(1).numpy(), wrong.mean(1).numpy()
        median_rank = ranks.quantile(0.5, dim=1).numpy()  # the mean of the middle two
        json = {
            "stages": self.stages,
            "readout": "final norm (scale recomputed per stage), unembedding, output soft-cap",
            "pairs": ranks.shape[1],
            "answer_mean_probability": mean_p.round(6).tolist(),
            "answer_median_rank": median_rank.tolist(),
            "answer_top1_fraction": (ranks == 0).float().mean(1).round(decimals=4).tolist(),
            "wrong_answer_mean_probability": wrong_p.round(6).tolist(),
            "prompts": self.shown,
        }
        curves = {
            f"...{p['prompt'][-32:]} ->{p['answer']}": (
                np.array(p["answer_probability"]),
                np.array(p["answer_rank"], dtype=float),
            )
            for p in self.shown
        }
        picture = lens_figure(
            self.stages, mean_p, median_rank, curves, "logit lens: the answer", wrong_p
        )
        return AnalysisResult(json, pictures={"logit_lens": picture}, tables=self._tables())

    def _tables(self) -> dict[str, str]:
        tables = {}
        for k, prompt in enumerate(self.shown[:2]):
            lines = [f"prompt: {prompt['prompt']!r}, answer {prompt['answer']!r}\n"]
            lines.append("| stage | answer rank | top tokens |\n|---|---|---|\n")
            for stage, rank, top in zip(self.stages, prompt["answer_rank"], prompt["top_k"]):
                tokens = ", ".join(f"{t['token']!r} {t['probability']:.2f}" for t in top)
                lines.append(f"| {stage} | {rank} | {tokens} |\n")
            tables[f"logit_lens/prompt_{k}"] = "".join(lines)
        return tables

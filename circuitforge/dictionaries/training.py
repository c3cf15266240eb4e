"""One training step of one sae-lens training SAE, the dead-feature counters and the metrics.

The loss (MSE plus the architecture's auxiliary terms, AuxK for TopK/BatchTopK) is sae-lens's
`training_forward_pass`; this module only feeds it and counts. Dead features are counted in
TOKENS since a feature last fired (sae-lens counts steps): a feature is dead once it has not
fired for `dead_window_tokens` training tokens, and the AuxK loss trains the dead ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor


def coefficients(sae: Any, step: int) -> dict[str, float]:
    """sae-lens's coefficients at `step`, linearly warmed up as its CoefficientScheduler does."""
    from sae_lens.saes.sae import TrainCoefficientConfig

    values = {}
    for name, value in sae.get_coefficients().items():
        if isinstance(value, TrainCoefficientConfig):
            warm = value.warm_up_steps
            values[name] = value.value * (min(1.0, step / warm) if warm > 0 else 1.0)
        else:
            values[name] = float(value)
    return values


@dataclass
class StepResult:
    loss: Tensor  # to backpropagate
    metrics: dict[str, Tensor]  # detached scalars
    tokens: int = 0  # tokens of this step, summed over the processes


SumAcrossProcesses = Callable[[Tensor], Tensor]


def training_step(
    sae: Any,
    x: Float[Tensor, "token d"],
    tokens_since_fired: Int[Tensor, " feature"],
    dead_window_tokens: int,
    step: int,
    sum_across_processes: SumAcrossProcesses | None = None,
) -> StepResult:
    """sae-lens's training forward on `x` (already scaled); updates `tokens_since_fired` in place
    (after the loss used the dead mask of the tokens before this batch). Under ddp,
    `sum_across_processes` (an all-reduce) makes the counters count every process's tokens and
    features, so they stay equal in all processes."""
    from sae_lens.saes.sae import TrainStepInput

    dead = tokens_since_fired >= dead_window_tokens
    out = sae.training_forward_pass(
        TrainStepInput(
            sae_in=x,
            coefficients=coefficients(sae, step),
            dead_neuron_mask=dead,
            n_training_steps=step,
            is_logging_step=False,
        )
    )
    with torch.no_grad():
        acts = out.feature_acts.to_dense() if out.feature_acts.is_sparse else out.feature_acts
        active = acts != 0
        fired, tokens = active.any(0), x.shape[0]
        if sum_across_processes is not None:
            fired = sum_across_processes(fired.long()) > 0
            tokens = int(sum_across_processes(torch.tensor(tokens, device=x.device)))
        tokens_since_fired += tokens
        tokens_since_fired[fired] = 0
        metrics = {
            "mse": out.losses["mse_loss"].detach(),
            "explained_variance": explained_variance(x, out.sae_out),
            "l0": active.sum(-1).float().mean(),
            "dead_fraction": dead.float().mean(),
        }
        for name, value in out.losses.items():
            if name != "mse_loss":
                metrics[name] = value.detach()
    return StepResult(loss=out.loss, metrics=metrics, tokens=tokens)


def explained_variance(x: Float[Tensor, "token d"], x_hat: Float[Tensor, "token d"]) -> Tensor:
    """1 - sum|x - x_hat|^2 / sum|x - mean(x)|^2 (mean over these tokens)."""
    x64, x_hat64 = x.detach().double(), x_hat.detach().double()
    residual = (x64 - x_hat64).pow(2).sum()
    total = (x64 - x64.mean(0)).pow(2).sum()
    return (1 - residual / total).float()


@torch.no_grad()
def average_buffers(sae: Any, sum_across_processes: SumAcrossProcesses, processes: int) -> None:
    """Under ddp: the SAE's running statistics (BatchTopK's `topk_threshold`, an average each
    process updates from its own batch) averaged over the processes, so every process (and the
    export) holds the estimate of all the batches, not process 0's alone."""
    for _, buffer in sae.named_buffers():
        if buffer.is_floating_point():
            buffer.copy_(sum_across_processes(buffer.clone()) / processes)

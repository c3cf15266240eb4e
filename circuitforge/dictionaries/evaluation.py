"""Held-out evaluation of dictionaries spliced into the model, in row chunks of bounded memory.

`splice_totals` runs, for each chunk of `chunk_rows` rows, one clean forward (capturing every
dictionary's hook) and one spliced forward per dictionary, and adds up per dictionary:
- reconstruction, over the scored positions (tokens not in `excluded`): squared error, the sums
  that give the mean-centred variance, active features per token, features ever active;
- next-token loss, clean and spliced, and KL(clean || spliced), per token over the loss
  positions: every position whose input and target are not pad (the convention of
  `evaluate_sae`, whose numbers this keeps).
The splice replaces the hook's activation at the scored positions only (excluded tokens keep
theirs). Logits are held for one chunk at a time (Gemma's 262k-word vocabulary: one 128-token
row of fp32 log-probabilities is 133 MB). `SpliceTotals` are sums in float64 that add across
chunks and calls (`+`) and round-trip through JSON, so an evaluation can be written as it goes
and resumed; `metrics()` turns them into the reported numbers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.dictionaries.tokens import trained_positions


@dataclass
class SpliceTotals:
    """Running sums of one dictionary's evaluation (see the module docstring)."""

    sum_x: Float[Tensor, " d_model"]  # float64
    ever_active: Bool[Tensor, " d_sae"]
    sq_err: float = 0.0
    sum_sq: float = 0.0
    n_tokens: int = 0
    n_active: int = 0
    nll_clean: float = 0.0
    nll_spliced: float = 0.0
    kl: float = 0.0
    n_targets: int = 0
    n_rows: int = 0

    @classmethod
    def empty(cls, d_model: int, d_sae: int) -> SpliceTotals:
        return cls(torch.zeros(d_model, dtype=torch.float64), torch.zeros(d_sae, dtype=torch.bool))

    def __add__(self, other: SpliceTotals) -> SpliceTotals:
        if (self.sum_x.shape, self.ever_active.shape) != (
            other.sum_x.shape,
            other.ever_active.shape,
        ):
            raise ValueError("SpliceTotals of dictionaries of different shapes cannot be added")
        return SpliceTotals(
            self.sum_x + other.sum_x,
            self.ever_active | other.ever_active,
            *(getattr(self, k) + getattr(other, k) for k in _SCALARS),
        )

    def metrics(self) -> dict[str, float | int]:
        """explained_variance = 1 - sum|x - x_hat|^2 / sum|x - mean(x)|^2; l0 = mean active
        features per scored token; dead_fraction = features never active on them; losses and
        KL = means over the loss positions (nats)."""
        if self.n_tokens == 0 or self.n_targets == 0:
            raise ValueError("the evaluated rows hold no scored tokens (all excluded or pad)")
        total_var = self.sum_sq - float(self.sum_x.pow(2).sum()) / self.n_tokens
        loss_clean = self.nll_clean / self.n_targets
        loss_spliced = self.nll_spliced / self.n_targets
        return {
            "explained_variance": 1 - self.sq_err / total_var,
            "l0": self.n_active / self.n_tokens,
            "dead_fraction": float((~self.ever_active).double().mean()),
            "loss_clean": loss_clean,
            "loss_spliced": loss_spliced,
            "loss_change": loss_spliced - loss_clean,
            "kl": self.kl / self.n_targets,
            "n_tokens": self.n_tokens,
            "n_targets": self.n_targets,
            "n_rows": self.n_rows,
        }

    def to_json(self) -> dict[str, Any]:
        """Exact (float64 reprs; the ever-active features as indices)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _SCALARS}
        out["sum_x"] = self.sum_x.tolist()
        out["d_sae"] = int(self.ever_active.numel())
        out["ever_active"] = self.ever_active.nonzero()[:, 0].tolist()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpliceTotals:
        ever = torch.zeros(int(data["d_sae"]), dtype=torch.bool)
        ever[torch.tensor(data["ever_active"], dtype=torch.long)] = True
        sum_x = torch.tensor(data["sum_x"], dtype=torch.float64)
        return cls(sum_x, ever, *(data[k] for k in _SCALARS))


_SCALARS = (
    "sq_err",
    "sum_sq",
    "n_tokens",
    "n_active",
    "nll_clean",
    "nll_spliced",
    "kl",
    "n_targets",
    "n_rows",
)


def splice_totals(
    model: HookedTransformer,
    dictionaries: dict[str, tuple[Any, str]],
    rows: Int[Tensor, "row pos"],
    excluded: list[int],
    pad: int | None,
    chunk_rows: int = 2,
    bf16: bool = False,
) -> dict[str, SpliceTotals]:
    """The totals of each dictionary (name -> (sae-lens SAE, hook name)) over `rows`.

    `excluded`: token ids that are neither reconstructed nor spliced (BOS, pad, other special
    tokens); `pad`: the pad id, whose positions carry no loss. `bf16`: the model's forwards under
    `torch.autocast("cpu" / device, bfloat16)`; the dictionaries and the losses stay fp32.
    """
    if not dictionaries:
        raise ValueError("no dictionaries to evaluate")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows} must be at least 1")
    d_model = model.cfg.d_model
    for name, (sae, hook) in dictionaries.items():
        if sae.cfg.d_in != d_model:
            raise ValueError(f"dictionary {name}: d_in {sae.cfg.d_in} != the model's {d_model}")
        if hook not in model.hook_dict:
            raise ValueError(f"dictionary {name}: the model has no hook {hook}")
    totals = {n: SpliceTotals.empty(d_model, sae.cfg.d_sae) for n, (sae, _) in dictionaries.items()}
    device = next(model.parameters()).device
    for start in range(0, rows.shape[0], chunk_rows):
        tokens = rows[start : start + chunk_rows].to(device)
        chunk = _chunk_totals(model, dictionaries, tokens, excluded, pad, bf16)
        totals = {n: totals[n] + chunk[n] for n in totals}
    return totals


@torch.no_grad()
def _chunk_totals(
    model: HookedTransformer,
    dictionaries: dict[str, tuple[Any, str]],
    tokens: Int[Tensor, "batch pos"],
    excluded: list[int],
    pad: int | None,
    bf16: bool,
) -> dict[str, SpliceTotals]:
    scored = trained_positions(tokens, excluded)
    targets = tokens[:, 1:]
    loss_mask = torch.ones_like(targets, dtype=torch.bool)
    if pad is not None:
        loss_mask &= (targets != pad) & (tokens[:, :-1] != pad)
    n_targets = int(loss_mask.sum())

    captured: dict[str, Tensor] = {}

    def capture(act: Float[Tensor, "batch pos d_model"], hook: Any) -> None:
        captured[hook.name] = act[scored].float()

    hooks = sorted({hook for _, hook in dictionaries.values()})
    with _autocast(tokens.device, bf16):
        clean = model.run_with_hooks(tokens, fwd_hooks=[(h, capture) for h in hooks])
    clean_lp = _log_probs(clean)
    del clean
    nll_clean = _nll_sum(clean_lp, targets, loss_mask)

    out = {}
    for name, (sae, hook) in dictionaries.items():
        x = captured[hook]
        acts = sae.encode(x.to(sae.W_dec.dtype))
        x_hat = sae.decode(acts).float()
        active = acts > 0

        def splice(act: Float[Tensor, "batch pos d_model"], hook: Any, x_hat=x_hat) -> Tensor:
            act = act.clone()
            act[scored] = x_hat.to(act.dtype)
            return act

        with _autocast(tokens.device, bf16):
            spliced = model.run_with_hooks(tokens, fwd_hooks=[(hook, splice)])
        spliced_lp = _log_probs(spliced)
        del spliced
        kl = (clean_lp.exp() * (clean_lp - spliced_lp)).sum(-1)
        x64, err = x.double().cpu(), (x - x_hat).double().cpu()
        out[name] = SpliceTotals(
            x64.sum(0),
            active.any(0).cpu(),
            sq_err=float(err.pow(2).sum()),
            sum_sq=float(x64.pow(2).sum()),
            n_tokens=int(x.shape[0]),
            n_active=int(active.sum()),
            nll_clean=nll_clean,
            nll_spliced=_nll_sum(spliced_lp, targets, loss_mask),
            kl=float(kl[loss_mask].double().sum()),
            n_targets=n_targets,
            n_rows=int(tokens.shape[0]),
        )
        del spliced_lp, kl
    return out


def _autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _log_probs(logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, "batch pos_1 vocab"]:
    """fp32 log-probabilities of the next token at every position but the last."""
    return logits[:, :-1].float().log_softmax(-1)


def _nll_sum(
    log_probs: Float[Tensor, "batch pos_1 vocab"],
    targets: Int[Tensor, "batch pos_1"],
    mask: Bool[Tensor, "batch pos_1"],
) -> float:
    nll = -log_probs.gather(-1, targets[..., None])[..., 0]
    return float(nll[mask].double().sum())

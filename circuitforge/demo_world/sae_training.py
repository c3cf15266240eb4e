"""Train TopK SAEs on the residual stream of every layer with sae-lens, and evaluate them ourselves.

`train_residual_saes` trains one TopK SAE per layer on `blocks.{L}.hook_resid_post` (Gemma-Scope
style) with sae-lens's `MultiSAETrainingRunner`: one shared forward pass of the frozen model feeds
every layer's SAE. BOS and pad tokens are left out of training. Activations are normalised to
mean norm sqrt(d_model) while training (`expected_average_only_in`); sae-lens folds that factor
into the weights at the end, so the saved SAEs (`out_dir/layer_{L}/`, read by
`sae_lens.SAE.load_from_disk`) work on raw activations.

`evaluate_sae` is our own measurement (not sae-lens' evals): explained variance, L0, dead
features and the next-token loss with the SAE spliced in, over every non-BOS, non-pad token.
"""

from __future__ import annotations

import math
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.data.padding import right_padded
from circuitforge.dictionaries.evaluation import splice_totals
from circuitforge.model import hooks
from circuitforge.model.tokenizer import encode, maybe_token_id, tokenizer_of

EMBEDDING = -1  # "layer -1": the residual stream before block 0, `blocks.0.hook_resid_pre`


def resid_hook_name(layer: int) -> str:
    """Gemma Scope's convention (layer L reads resid_post L), one step further down: layer -1
    reads the stream block 0 starts from, which a Patchscope at source layer 0 writes to."""
    return hooks.resid_pre(0) if layer == EMBEDDING else hooks.resid_post(layer)


def sae_folder(layer: int) -> str:
    return "resid_pre_0" if layer == EMBEDDING else f"layer_{layer}"


def special_token_ids(model: HookedTransformer) -> list[int]:
    """BOS and pad ids of the model's tokenizer (the tokens SAEs neither train nor score on)."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        return []
    ids = {maybe_token_id(tokenizer, "bos"), maybe_token_id(tokenizer, "pad")}
    return sorted(i for i in ids if i is not None)


def tokenize_documents(model: HookedTransformer, documents: list[str]) -> list[list[int]]:
    """Token ids of each document, without special tokens (callers add BOS)."""
    tokenizer = tokenizer_of(model)
    return [encode(tokenizer, [doc], add_special_tokens=False)[0] for doc in documents]


def pack_documents(docs: list[list[int]], context: int, bos: int) -> Int[Tensor, "row pos"]:
    """Concatenate `BOS doc BOS doc ...` and cut it into rows of `context` tokens.

    Every row starts with BOS (added when a cut falls inside a document, as sae-lens does);
    the last, incomplete row is dropped. No padding, so no compute is spent on pad tokens.
    """
    if context < 2:
        raise ValueError(f"context={context} leaves no room after BOS")
    stream = [t for doc in docs for t in (bos, *doc)]
    rows, i = [], 0
    while True:
        prefix = [] if stream[i : i + 1] == [bos] else [bos]
        take = context - len(prefix)
        if i + take > len(stream):
            break
        rows.append(prefix + stream[i : i + take])
        i += take
    return torch.tensor(rows, dtype=torch.long).reshape(-1, context)


def pad_documents(
    docs: list[list[int]], context: int, bos: int, pad: int
) -> Int[Tensor, "row pos"]:
    """One row per document: BOS + document (cut to `context`), right-padded to the longest."""
    return right_padded([[bos, *doc][:context] for doc in docs], pad)


def train_residual_saes(
    model: HookedTransformer,
    token_rows: Int[Tensor, "row pos"],
    layers: list[int],
    out_dir: Path,
    d_sae: int,
    k: int,
    training_tokens: int,
    seed: int,
    lr: float = 2e-3,
    batch_size_tokens: int = 4096,
) -> dict[int, Path]:
    """Train one TopK SAE per layer on `blocks.{L}.hook_resid_post` (layer -1: resid_pre 0); save
    to `out_dir/layer_{L}` (`resid_pre_0`).

    `token_rows` are complete model inputs (BOS first, right-padded with the pad token or packed);
    BOS and pad positions are excluded from training. Rows are reused for several epochs when
    `training_tokens` exceeds them. Deterministic given `seed`; the caller's RNG state is kept.
    The default `lr` is above sae-lens' 3e-4 because the budgets here are short (a few hundred
    steps): on the demo model, 2e-3 and 4e-3 beat 5e-4 and 1e-3 clearly at 200k tokens.
    Must run in the main thread (sae-lens installs signal handlers; they are restored after).
    """
    from datasets import Dataset
    from sae_lens import LoggingConfig
    from sae_lens.multi_sae_training_runner import (
        MultiSAETrainingRunner,
        MultiSAETrainingRunnerConfig,
    )
    from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

    if not layers:
        raise ValueError("layers is empty")
    if training_tokens < batch_size_tokens:
        raise ValueError(
            f"training_tokens={training_tokens} is below one batch ({batch_size_tokens} tokens)"
        )
    if not 0 < k <= d_sae:
        raise ValueError(f"k={k} must be in [1, d_sae={d_sae}]")
    out_dir = Path(out_dir)
    n_rows, context = token_rows.shape
    d_model = model.cfg.d_model
    device = str(model.cfg.device)
    steps = training_tokens // batch_size_tokens
    names = {layer: sae_folder(layer) for layer in layers}

    sae_cfgs = {
        name: TopKTrainingSAEConfig(
            d_in=d_model,
            d_sae=d_sae,
            k=k,
            normalize_activations="expected_average_only_in",
            device=device,
        )
        for name in names.values()
    }
    cfg = MultiSAETrainingRunnerConfig(
        saes=sae_cfgs,
        hook_names={name: resid_hook_name(layer) for layer, name in names.items()},
        model_name=str(model.cfg.model_name),
        model_from_pretrained_kwargs={},  # not loaded by sae-lens; no weight processing
        dataset_path="",  # the tokens come in through override_dataset
        streaming=False,
        context_size=context,
        prepend_bos=False,  # the rows already start with BOS
        exclude_special_tokens=special_token_ids(model),
        training_tokens=training_tokens,
        train_batch_size_tokens=batch_size_tokens,
        store_batch_size_prompts=max(1, min(32, n_rows)),
        # The mixing buffer holds n_batches_in_buffer * context_size TOKENS (not batches of
        # prompts) and must hold at least one training batch: keep four.
        n_batches_in_buffer=math.ceil(4 * batch_size_tokens / context),
        lr=lr,
        lr_warm_up_steps=steps // 20,
        lr_decay_steps=steps // 5,
        # Defaults count in steps (1000) and would never flag a feature dead in a short run,
        # which leaves the TopK auxiliary loss off.
        dead_feature_window=max(1, min(1000, steps // 5)),
        feature_sampling_window=max(1, min(2000, steps // 2)),
        n_batches_for_norm_estimate=max(1, min(10, steps)),
        device=device,
        seed=seed,
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,  # default "checkpoints/<id>" under the working directory
        n_checkpoints=0,
        save_final_checkpoint=False,
        output_path=str(out_dir),  # writes out_dir/<name>/ and out_dir/runner_cfg.json
    )
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed))
    dataset = Dataset.from_dict({"tokens": token_rows[order].tolist()})

    with torch.random.fork_rng(), _restored_signal_handlers(), warnings.catch_warnings():
        # Rows are reused once exhausted; sae-lens warns at every epoch (and compares rows to
        # tokens when it checks the dataset size).
        warnings.filterwarnings("ignore", message=".*(exhausted|fewer samples|copy construct).*")
        torch.manual_seed(seed)  # SAE initialisation and the activation shuffle
        runner = MultiSAETrainingRunner(cfg, override_dataset=dataset, override_model=model)
        runner.run()

    return {layer: out_dir / name for layer, name in names.items()}


class _restored_signal_handlers:
    """sae-lens installs SIGINT/SIGTERM handlers for its run and leaves them: put ours back."""

    def __enter__(self) -> None:
        self.main = threading.current_thread() is threading.main_thread()
        self.saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc: Any) -> None:
        if self.main:
            for sig, handler in self.saved.items():
                signal.signal(sig, handler)


@torch.no_grad()
def evaluate_sae(
    model: HookedTransformer,
    sae: Any,
    token_rows: Int[Tensor, "row pos"],
    hook_name: str,
    batch_size: int = 32,
) -> dict[str, float | int]:
    """Reconstruction and spliced-loss metrics of `sae` at `hook_name`, by our own code
    (`circuitforge.dictionaries.evaluation.splice_totals`, `batch_size` rows a forward).

    Scored tokens: every position whose token is neither BOS nor pad. `explained_variance` =
    1 - sum|x - x_hat|^2 / sum|x - mean(x)|^2; `l0` = mean number of active features per token;
    `dead_fraction` = features never active on these tokens. `loss_spliced` replaces the
    activation of the scored tokens (BOS and pad keep theirs) with the SAE reconstruction;
    losses (and `kl`, KL(clean || spliced)) are means over non-pad next-token targets.
    """
    pad = getattr(model.tokenizer, "pad_token_id", None)
    totals = splice_totals(
        model, {"sae": (sae, hook_name)}, token_rows, special_token_ids(model), pad, batch_size
    )
    return totals["sae"].metrics()

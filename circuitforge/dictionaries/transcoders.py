"""Per-layer skip transcoders: what to train, and the sae-lens training class they train as.

A transcoder of layer L reads `blocks.L.hook_resid_mid` and predicts `blocks.L.hook_mlp_out`
(what the MLP adds to the residual stream; in Gemma after its post-MLP RMSNorm, which
TransformerLens applies before `hook_mlp_out`), as circuit-tracer's per-layer transcoders do.
sae-lens 6.54 has transcoder classes for inference (`SkipTranscoder`, `JumpReLUSkipTranscoder`)
but no training ones, so the training class is sae-lens's `BatchTopKTrainingSAE` (BatchTopK
activation, AuxK, the running threshold it exports as JumpReLU) with sae-lens's skip connection
(`W_skip`, zero at the start) added: its loss, computed by sae-lens's `training_forward_pass`,
compares the output with the target (`mlp_out`) while the encoder and the skip read the input
(`resid_mid`, held by `reading`). No encoder, activation or loss is written here.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

TRANSCODER_INPUT = "hook_resid_mid"
TRANSCODER_OUTPUT = "hook_mlp_out"


@dataclass(frozen=True)
class TranscoderSpec:
    """One transcoder.

    Args:
        layer: the block whose MLP it replaces (reads `blocks.L.hook_resid_mid`, writes
            `blocks.L.hook_mlp_out`).
        width: number of features (d_transcoder).
        k: active features per token on average over the batch (BatchTopK).
        aux_coefficient: weight of sae-lens's AuxK loss (dead features fit the residual error).
    """

    layer: int
    width: int
    k: int = 64
    aux_coefficient: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"transcoder {self.layer}: width={self.width} must be at least 1")
        if not 1 <= self.k <= self.width:
            raise ValueError(
                f"transcoder {self.layer}: k={self.k} must be in [1, width={self.width}]"
            )

    @property
    def input_hook(self) -> str:
        return f"blocks.{self.layer}.{TRANSCODER_INPUT}"

    @property
    def output_hook(self) -> str:
        return f"blocks.{self.layer}.{TRANSCODER_OUTPUT}"

    def key(self) -> str:
        """A ModuleDict key."""
        return f"layer_{self.layer}"


def check_transcoder_specs(model: HookedTransformer, specs: list[TranscoderSpec]) -> int:
    """Refuse an empty list, a layer twice and hooks the model lacks; return the layer to stop at
    (`stop_at_layer` of the one forward that feeds them all)."""
    if not specs:
        raise ValueError("transcoders is empty: give at least one layer")
    layers = [s.layer for s in specs]
    if len(set(layers)) != len(layers):
        raise ValueError(f"transcoders: a layer appears twice in {layers}")
    for spec in specs:
        for hook in (spec.input_hook, spec.output_hook):
            if hook not in model.hook_dict:
                raise ValueError(
                    f"transcoder of layer {spec.layer}: the model has no hook {hook!r} "
                    f"({model.cfg.n_layers} layers, 0..{model.cfg.n_layers - 1})"
                )
    return max(layers) + 1


def training_transcoder(spec: TranscoderSpec, d_model: int, model_name: str) -> Any:
    """A fresh training skip transcoder (initialised from the global torch RNG)."""
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    metadata = SAEMetadata(
        hook_name=spec.input_hook, hook_name_out=spec.output_hook, model_name=model_name
    )
    config = BatchTopKTrainingSAEConfig(
        d_in=d_model,
        d_sae=spec.width,
        k=spec.k,
        aux_loss_coefficient=spec.aux_coefficient,
        apply_b_dec_to_input=False,  # b_dec is the output's bias, not the input's centre
        rescale_acts_by_decoder_norm=False,  # so the exported JumpReLU computes the same
        metadata=metadata,
    )
    return _skip_transcoder_class()(config)


def _skip_transcoder_class():
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE

    class BatchTopKSkipTranscoderTraining(BatchTopKTrainingSAE):
        """sae-lens's BatchTopK training SAE whose encoder and skip read `reading`'s input while
        sae-lens's loss compares its output with the `sae_in` it is given (the target)."""

        def __init__(self, cfg) -> None:
            super().__init__(cfg)
            self.W_skip = torch.nn.Parameter(torch.zeros(cfg.d_in, cfg.d_in, dtype=self.dtype))
            self._input: Tensor | None = None

        @contextlib.contextmanager
        def reading(self, x: Float[Tensor, "token d"]):
            self._input = x
            try:
                yield
            finally:
                self._input = None

        def encode_with_hidden_pre(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return super().encode_with_hidden_pre(self._source(x))

        def decode(self, feature_acts: Tensor) -> Tensor:
            source = self._input
            out = super().decode(feature_acts)
            return out if source is None else out + source @ self.W_skip.T

        def _source(self, x: Tensor) -> Tensor:
            return x if self._input is None else self._input

    return BatchTopKSkipTranscoderTraining


@dataclass(frozen=True)
class TranscoderStatistics:
    """Centre and scales of a transcoder's input and target, measured on a first slice."""

    input_mean: Float[Tensor, " d"]
    input_scale: float
    output_mean: Float[Tensor, " d"]
    output_scale: float


@torch.no_grad()
def folded_tensors(sae: Any, stats: TranscoderStatistics) -> dict[str, Tensor]:
    """The transcoder on raw activations, in circuit-tracer's names and layout:
    `out = JumpReLU(x @ W_enc.T + b_enc; threshold) @ W_dec + b_dec + x @ W_skip.T`.

    Training reads `(x - input_mean) * input_scale` and predicts `mlp_out * output_scale`;
    BatchTopK's running threshold becomes every feature's JumpReLU threshold (as sae-lens
    exports BatchTopK SAEs)."""
    s_in, s_out = stats.input_scale, stats.output_scale
    mean = stats.input_mean.to(sae.W_enc.dtype) * s_in
    W_enc = sae.W_enc.detach().float()  # d_in x d_sae
    W_skip = sae.W_skip.detach().float()  # d_out x d_in
    return {
        "W_enc": (W_enc.T * s_in).contiguous(),
        "b_enc": (sae.b_enc.detach().float() - mean @ W_enc).contiguous(),
        "W_dec": (sae.W_dec.detach().float() / s_out).contiguous(),
        "b_dec": ((sae.b_dec.detach().float() - mean @ W_skip.T) / s_out).contiguous(),
        "W_skip": (W_skip * (s_in / s_out)).contiguous(),
        "activation_function.threshold": torch.full(
            (sae.cfg.d_sae,), float(sae.topk_threshold), dtype=torch.float32
        ),
    }

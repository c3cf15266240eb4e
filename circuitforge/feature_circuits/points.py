"""SAE points: where in the model an SAE reads, in computation order, and its affine decoder.

A point is one hook with an SAE. Residual points (`hook_resid_pre/mid/post`) cut the model: all
that reaches later layers passes through them. Sublayer points (`attn.hook_z`,
`hook_attn_out`, `hook_mlp_out`) sit between two residual points. Activations are handled
flattened to `[batch pos d_in]` (hook_z's heads are concatenated, as Gemma Scope reads them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.model import hooks
from circuitforge.model.hooks import parse_hook
from circuitforge.sae.matching import MatchedSAE, SAESource, load_sae

_SLOT = {  # where in block L a hook sits, from L (its input) to L + 1 (its output)
    "hook_resid_pre": 0.0,  # so resid_pre L + 1 and resid_post L are the same point
    "attn.hook_z": 0.2,
    "hook_attn_out": 0.4,
    "hook_resid_mid": 0.6,
    "hook_mlp_out": 0.8,
    "hook_resid_post": 1.0,
}
SUBLAYER = {
    "hook_resid_pre": "resid",
    "hook_resid_mid": "resid",
    "hook_resid_post": "resid",
    "attn.hook_z": "attn",
    "hook_attn_out": "attn",
    "hook_mlp_out": "mlp",
}


@dataclass(frozen=True)
class SAEGroup:
    """SAEs of one kind over several layers: `source` with `{layer}` filled from `layers`."""

    source: SAESource
    layers: list[int] = field(default_factory=list)


@dataclass
class SAEPoint:
    hook_name: str
    layer: int
    sublayer: str  # resid | attn | mlp
    order: float  # position in the computation (resid_pre L == resid_post L-1)
    sae: MatchedSAE
    decoder: Float[Tensor, "d_sae d_in"]  # decode(e_i) - decode(0): the SAE's affine decoder
    decoder_bias: Float[Tensor, " d_in"]

    @property
    def is_residual(self) -> bool:
        return self.sublayer == "resid"

    @property
    def d_sae(self) -> int:
        return self.decoder.shape[0]

    @property
    def name(self) -> str:
        return f"{self.sublayer}{self.layer}" if self.sublayer != "resid" else f"resid{self.layer}"

    def to(self, device: torch.device | str) -> SAEPoint:
        """Move the SAE and its decoder (to the device of the block it reads). A decoder that is
        the SAE's own `W_dec` (see `affine_decoder`) stays that tensor: one copy, not two."""
        sae = self.sae.sae
        shared = self.decoder.data_ptr() == sae.W_dec.data_ptr()
        sae.to(device)
        self.decoder = sae.W_dec.detach() if shared else self.decoder.to(device)
        self.decoder_bias = self.decoder_bias.to(device)
        return self

    def encode(self, x: Float[Tensor, "batch pos d_in"]) -> Float[Tensor, "batch pos d_sae"]:
        sae = self.sae.sae
        return sae.encode(x.to(sae.W_dec.dtype))

    def decode(self, f: Float[Tensor, "batch pos d_sae"]) -> Float[Tensor, "batch pos d_in"]:
        return f @ self.decoder + self.decoder_bias


def hook_place(hook_name: str) -> tuple[int, str, float]:
    point = parse_hook(hook_name)
    if point is None or point.point not in _SLOT:
        raise ValueError(
            f"feature circuits read SAEs on resid_pre/mid/post, attn.hook_z, hook_attn_out or "
            f"hook_mlp_out; this SAE reads {hook_name!r}"
        )
    return point.layer, SUBLAYER[point.point], point.layer + _SLOT[point.point]


def flat_hook_z(sae) -> None:
    """Make a hook_z SAE read and write z flattened to [..., n_heads * d_head], as every reader
    here gives it. sae-lens turns on its hook_z reshaping for some pretrained loads (Gemma Scope's
    att SAEs): then `encode` folds the input's last two axes (on flat z: position and width)
    and `decode` fails before the first `encode` ('no attribute d_head')."""
    if getattr(sae, "hook_z_reshaping_mode", False):
        sae.turn_off_forward_pass_hook_z_reshaping()


def one_hot_rows(start: int, stop: int, width: int, dtype: torch.dtype) -> Tensor:
    """Rows `start..stop-1` of the `width x width` identity, without building the identity
    (16,384 x 16,384 in fp32 is 1 GiB; a 131k-wide SAE's would be 64 GiB)."""
    rows = torch.zeros(stop - start, width, dtype=dtype)
    rows[torch.arange(stop - start), torch.arange(start, stop)] = 1
    return rows


@torch.no_grad()
def affine_decoder(sae, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """(D, b) with sae.decode(f) == f @ D + b for every f (checked on random f).

    A plain fp32 decoder, decode(f) = f @ W_dec + b_dec (Gemma Scope's and most sae-lens SAEs),
    gives D = `W_dec` itself: no copy beside the SAE, and no decoding of the d_sae one-hot rows
    (a d_sae x d_sae x d_in product: 40 s for a 16k Gemma Scope SAE on one core). Any other
    affine decoder (bf16, folded decoder norms) is decoded row by row into an fp32 D."""
    d_sae = sae.W_dec.shape[0]
    dtype = sae.W_dec.dtype
    bias = sae.decode(torch.zeros(1, d_sae, dtype=dtype))[0].float()
    probe = torch.rand(2, d_sae, dtype=dtype, generator=torch.Generator().manual_seed(0))
    decoded = sae.decode(probe).float()
    if dtype == torch.float32:
        w_dec = sae.W_dec.detach()
        rounding = 1e-5 * float((probe.abs() @ w_dec.abs() + bias.abs()).max())
        if torch.allclose(decoded, probe @ w_dec + bias, atol=rounding, rtol=0):
            return w_dec, bias
    rows = [
        sae.decode(one_hot_rows(i, min(i + chunk, d_sae), d_sae, dtype)).float() - bias
        for i in range(0, d_sae, chunk)
    ]
    decoder = torch.cat(rows)
    tolerance = max(1e-3, 4 * torch.finfo(dtype).eps) * float(decoded.abs().max().clamp(min=1))
    if not torch.allclose(decoded, probe.float() @ decoder + bias, atol=tolerance, rtol=0):
        raise ValueError("this SAE's decoder is not affine in its features; attribution needs it")
    return decoder, bias


def hook_width(model: HookedTransformer, hook_name: str) -> int:
    cfg = model.cfg
    point = parse_hook(hook_name)
    if point is not None and hook_name == hooks.attn_z(point.layer):
        return cfg.n_heads * cfg.d_head
    return cfg.d_model


def load_points(model: HookedTransformer, groups: list[SAEGroup]) -> list[SAEPoint]:
    """Every SAE of `groups`, checked against the model, in computation order."""
    points = []
    for group in groups:
        for layer in group.layers:
            if not 0 <= layer < model.cfg.n_layers:
                raise ValueError(
                    f"SAE layer {layer} out of range: the model has {model.cfg.n_layers}"
                )
            matched = load_sae(group.source, layer)
            hook = matched.hook_name
            if hook not in model.hook_dict:
                raise ValueError(
                    f"SAE {matched.name} reads {hook!r}, which this model does not have"
                )
            at, sublayer, order = hook_place(hook)
            d_in, want = matched.sae.W_dec.shape[1], hook_width(model, hook)
            if d_in != want:
                raise ValueError(f"SAE {matched.name} has d_in {d_in} but {hook} is {want} wide")
            flat_hook_z(matched.sae)
            decoder, bias = affine_decoder(matched.sae)
            points.append(SAEPoint(hook, at, sublayer, order, matched, decoder, bias))
    points.sort(key=lambda p: p.order)
    orders = [p.order for p in points]
    if len(set(orders)) != len(orders):
        raise ValueError("two SAEs read the same point (resid_pre L is resid_post L-1)")
    if not points:
        raise ValueError("give at least one SAE")
    return points


def upstream_points(points: list[SAEPoint], q: int) -> list[int]:
    """Indices of the points with edges into point `q`: the last residual point before it and
    the sublayer points after that one (earlier points reach `q` only through it)."""
    ups = []
    for p in range(q - 1, -1, -1):
        ups.append(p)
        if points[p].is_residual:
            break
    return ups[::-1]

"""What to train: one sae-lens training SAE per hook point, checked against the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformer_lens import HookedTransformer

ARCHITECTURES = ("topk", "batchtopk", "jumprelu")


@dataclass(frozen=True)
class DictionarySpec:
    """One dictionary.

    Args:
        hook: the TransformerLens hook it reads, e.g. `blocks.5.hook_resid_post`.
        width: number of features (d_sae).
        k: active features per token (TopK, BatchTopK); ignored by JumpReLU.
        architecture: `topk`, `batchtopk` (sae-lens's BatchTopK: exported as JumpReLU with the
            learnt threshold) or `jumprelu`.
        aux_coefficient: weight of sae-lens's AuxK loss (TopK, BatchTopK): dead features
            reconstruct the residual error.
        d_in: the width the SAE expects; when given it must equal the hook's width.
        folder: the export folder's name (default `layer_{L}` for `blocks.L.hook_resid_post`,
            the shipped SAEs' convention; otherwise the hook name).
        extra: more fields of the sae-lens training config (e.g. `l0_coefficient`).
    """

    hook: str
    width: int
    k: int = 64
    architecture: str = "topk"
    aux_coefficient: float = 1.0
    d_in: int | None = None
    folder: str | None = None
    extra: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"dictionary {self.hook}: architecture {self.architecture!r} is not one of "
                f"{ARCHITECTURES}"
            )
        if self.width < 1:
            raise ValueError(f"dictionary {self.hook}: width={self.width} must be at least 1")
        if self.architecture != "jumprelu" and not 1 <= self.k <= self.width:
            raise ValueError(
                f"dictionary {self.hook}: k={self.k} must be in [1, width={self.width}]"
            )

    def layer(self) -> int:
        parts = self.hook.split(".")
        if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit():
            raise ValueError(f"dictionary hook {self.hook!r} is not a `blocks.L.*` hook")
        return int(parts[1])

    def folder_name(self) -> str:
        if self.folder is not None:
            return self.folder
        if self.hook.endswith(".hook_resid_post"):
            return f"layer_{self.layer()}"
        return self.hook

    def key(self) -> str:
        """A ModuleDict key (no dots)."""
        return self.hook.replace(".", "__")


def check_specs(model: HookedTransformer, specs: list[DictionarySpec]) -> int:
    """Refuse hooks the model lacks, duplicates and d_in mismatches; return the layer to stop at
    (`stop_at_layer` of the one forward that feeds them all)."""
    if not specs:
        raise ValueError("dictionaries is empty: give at least one")
    hooks = [s.hook for s in specs]
    if len(set(hooks)) != len(hooks):
        raise ValueError(f"dictionaries: a hook appears twice in {hooks}")
    folders = [s.folder_name() for s in specs]
    if len(set(folders)) != len(folders):
        raise ValueError(f"dictionaries: two export folders share a name in {folders}")
    for spec in specs:
        if spec.hook not in model.hook_dict:
            raise ValueError(
                f"dictionary hook {spec.hook!r}: the model has no such hook "
                f"({model.cfg.n_layers} layers; e.g. blocks.0.hook_resid_post)"
            )
        spec.layer()  # a `blocks.L.*` hook
        if spec.d_in is not None and spec.d_in != hook_width(model, spec.hook):
            raise ValueError(
                f"dictionary {spec.hook}: d_in={spec.d_in} does not match the hook's width "
                f"{hook_width(model, spec.hook)}"
            )
    return max(s.layer() for s in specs) + 1


def hook_width(model: HookedTransformer, hook: str) -> int:
    """The width of a residual-stream hook without running the model; other hooks are refused
    (their widths vary: d_mlp, n_heads x d_head)."""
    if ".hook_resid_" in hook or hook.endswith((".hook_mlp_out", ".hook_attn_out")):
        return model.cfg.d_model
    raise ValueError(
        f"dictionary hook {hook!r}: only residual-stream hooks (hook_resid_pre/mid/post, "
        "hook_mlp_out, hook_attn_out) are supported"
    )


def training_sae(spec: DictionarySpec, d_in: int, model_name: str) -> Any:
    """A fresh sae-lens training SAE for `spec` (initialised from the global torch RNG).

    The input is centred by `b_dec` (sae-lens subtracts it before encoding) and scaled by our
    own factor, so sae-lens's own normalisation stays off."""
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    metadata = SAEMetadata(hook_name=spec.hook, model_name=model_name)
    common: dict[str, Any] = {"d_in": d_in, "d_sae": spec.width, "metadata": metadata}
    config_class: Any = {
        "jumprelu": JumpReLUTrainingSAEConfig,
        "batchtopk": BatchTopKTrainingSAEConfig,
        "topk": TopKTrainingSAEConfig,
    }[spec.architecture]
    check_extra(spec, config_class)
    common.update(spec.extra or {})
    if spec.architecture == "jumprelu":
        return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(**common))
    topk = {"k": spec.k, "aux_loss_coefficient": spec.aux_coefficient, **common}
    if spec.architecture == "batchtopk":
        return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**topk))
    return TopKTrainingSAE(TopKTrainingSAEConfig(**topk))


# set by the spec's own fields (and checked against the model), never through `extra`
OWN_FIELDS = ("d_in", "d_sae", "k", "aux_loss_coefficient", "metadata")


def check_extra(spec: DictionarySpec, config_class: Any) -> None:
    """Refuse `extra` fields that the spec sets itself or that sae-lens's config lacks."""
    import dataclasses

    extra = set(spec.extra or {})
    own = sorted(extra & set(OWN_FIELDS))
    if own:
        raise ValueError(
            f"dictionary {spec.hook}: extra sets {own}; give them as the spec's own fields "
            "(width, k, aux_coefficient, d_in), which are checked against the model"
        )
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(extra - known)
    if unknown:
        raise ValueError(
            f"dictionary {spec.hook}: extra fields {unknown} are not fields of sae-lens's "
            f"{config_class.__name__}"
        )

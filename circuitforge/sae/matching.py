"""Load an SAE (sae-lens pretrained release or local directory) that reads a given hook.

Gemma Scope's `layer_{L}` SAEs read `blocks.{L}.hook_resid_post`, which is the same tensor as
`blocks.{L+1}.hook_resid_pre`: a vector injected at `resid_pre` of layer S is read by the
layer S-1 SAE. We accept any SAE whose hook is the same point of the residual stream, and
refuse the rest (and SAEs whose width does not match the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitforge.file_checks import DamagedFileError, read_json_object
from circuitforge.manifest import MANIFEST, verify_manifest
from circuitforge.model import hooks
from circuitforge.model.hooks import parse_hook


class SAEMismatchError(ValueError):
    """The SAE does not read the point of the residual stream the vector lives at."""


@dataclass(frozen=True)
class SAESource:
    """Which SAE to use. Give `path`, or `release` with `sae_id`.

    Args:
        release: sae-lens pretrained release, e.g. `gemma-scope-2b-pt-res-canonical`.
        sae_id: id inside the release; `{layer}` in it is filled with the layer whose SAE reads
            the injection point (e.g. `layer_{layer}/width_16k/canonical`).
        path: a local SAE directory written by sae-lens `save_model`; `{layer}` is filled too.
    """

    release: str | None = None
    sae_id: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.release is None):
            raise ValueError("give either sae path, or release (with sae_id)")
        if self.release is not None and self.sae_id is None:
            raise ValueError(f"release {self.release!r} needs an sae_id")


@dataclass
class MatchedSAE:
    sae: Any
    name: str  # release/id or path
    hook_name: str  # the hook the SAE reads
    neuronpedia_id: str | None = None

    def feature_url(self, feature: int) -> str | None:
        if self.neuronpedia_id is None:
            return None
        return f"https://www.neuronpedia.org/{self.neuronpedia_id}/{feature}"


def same_point_hooks(hook_name: str) -> list[str]:
    """Hook names that carry the same tensor as `hook_name` (resid_pre L == resid_post L-1)."""
    point = parse_hook(hook_name)
    if point is not None and hook_name == hooks.resid_pre(point.layer):
        return [hook_name] + ([hooks.resid_post(point.layer - 1)] if point.layer > 0 else [])
    if point is not None and hook_name == hooks.resid_post(point.layer):
        return [hook_name, hooks.resid_pre(point.layer + 1)]
    return [hook_name]


def _hook_layer(hook_name: str) -> int | None:
    point = parse_hook(hook_name)
    return None if point is None else point.layer


def load_matching_sae(source: SAESource, hook_name: str, d_model: int) -> MatchedSAE:
    """The SAE of `source` that reads `hook_name` (trying each layer naming of that point)."""
    candidates = same_point_hooks(hook_name)
    template = source.path if source.path is not None else source.sae_id
    assert template is not None
    layers = list(dict.fromkeys(_hook_layer(h) for h in reversed(candidates)))
    names = (
        [template.format(layer=layer) for layer in layers] if "{layer}" in template else [template]
    )
    tried = []
    for name in names:
        matched = _load(source, name)
        tried.append(f"{matched.name} reads {matched.hook_name}")
        if matched.hook_name in candidates:
            d_in = matched.sae.cfg.d_in
            if d_in != d_model:
                raise SAEMismatchError(
                    f"SAE {matched.name} has d_in={d_in} but the model's residual stream has "
                    f"d_model={d_model}: it was trained on another model"
                )
            return matched
    raise SAEMismatchError(
        f"no SAE reads the injection point {hook_name} (same tensor: {candidates}); "
        f"tried: {tried}. Use the SAE of that point (for Gemma Scope, layer_{{S-1}} reads "
        "resid_pre of layer S), or put {layer} in the id to have it chosen."
    )


def load_sae(source: SAESource, layer: int | None = None) -> MatchedSAE:
    """The SAE `source` names, `{layer}` in its id or path filled with `layer`."""
    template = source.path if source.path is not None else source.sae_id
    assert template is not None
    if "{layer}" in template and layer is None:
        raise ValueError(f"{template} has {{layer}} in it: give the layer")
    return _load(source, template.format(layer=layer) if "{layer}" in template else template)


def load_sae_dir(path: Path) -> Any:
    """The sae-lens SAE saved in `path`; a damaged file is refused in one line naming it."""
    from sae_lens import SAE
    from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
    from safetensors import SafetensorError

    if (path / MANIFEST).is_file():  # the shipped SAEs carry one; sae-lens' own do not
        verify_manifest(path)
    for name in (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME):
        if not (path / name).is_file():
            raise FileNotFoundError(f"SAE directory {path} has no {name} (sae-lens saves both)")
    config, weights = path / SAE_CFG_FILENAME, path / SAE_WEIGHTS_FILENAME
    read_json_object(config, "SAE config", ("d_in", "d_sae"))
    try:
        return SAE.load_from_disk(str(path), device="cpu")
    except SafetensorError as error:
        raise DamagedFileError(
            f"SAE weights {weights} is not a readable safetensors file ({error}): cut short, "
            "or another format"
        ) from None
    except (RuntimeError, TypeError, ValueError, KeyError) as error:
        lines = str(error).strip().splitlines() or [""]
        first = next((line.strip() for line in lines if "mismatch" in line), lines[0])
        raise DamagedFileError(
            f"SAE directory {path}: {weights.name} does not fit {config.name} "
            f"({type(error).__name__}: {first}): another SAE's weights or config"
        ) from None


def _load(source: SAESource, name: str) -> MatchedSAE:
    from sae_lens import SAE

    if source.path is not None:
        path = Path(name)
        if not path.is_dir():
            raise FileNotFoundError(f"SAE directory {path} does not exist")
        sae = load_sae_dir(path).requires_grad_(False)  # read, not trained
        return MatchedSAE(sae, str(path), sae.cfg.metadata.hook_name)

    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    release = source.release
    assert release is not None
    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise ValueError(f"unknown sae-lens release {release!r}")
    lookup = directory[release]
    if name not in lookup.saes_map:
        raise ValueError(f"release {release!r} has no SAE {name!r}")
    _require_cached_or_hub(lookup.repo_id, lookup.saes_map[name], f"SAE {release}/{name}")
    sae = SAE.from_pretrained(release, name, device="cpu")
    if isinstance(sae, tuple):
        sae = sae[0]
    sae.requires_grad_(False)  # read, not trained
    neuronpedia = (lookup.neuronpedia_id or {}).get(name)
    return MatchedSAE(sae, f"{release}/{name}", sae.cfg.metadata.hook_name, neuronpedia)


def _require_cached_or_hub(repo_id: str, folder: str, what: str) -> None:
    from circuitforge.hub import is_cached, require_hub

    if any(is_cached(repo_id, f"{folder}/{f}") for f in ("params.npz", "cfg.json")):
        return
    require_hub(what, "Use a local SAE directory instead (callback init_args.sae.path).")

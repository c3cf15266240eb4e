"""circuit-tracer's transcoder-set format: write it, and read it back (our own reader).

The format (circuit-tracer 0.5.0, `circuit_tracer/transcoder/single_layer_transcoder.py` and
`utils/hf_utils.py` / `utils/caching.py`): a folder with one `layer_{L}.safetensors` per layer,
L = 0..n-1 with none missing, holding `W_enc` [d_transcoder, d_model], `W_dec` [d_transcoder,
d_model], `b_enc` [d_transcoder], `b_dec` [d_model], optional `W_skip` [d_model, d_model] and,
for JumpReLU, `activation_function.threshold` [d_transcoder]; and `config.yaml` with
`model_kind: transcoder_set`, `feature_input_hook` / `feature_output_hook` (block-relative hook
names: `hook_resid_mid`, `hook_mlp_out`), `transcoders` (the files, in layer order) and `scan`.
A transcoder computes `JumpReLU(x @ W_enc.T + b_enc) @ W_dec + b_dec + x @ W_skip.T`, where
JumpReLU keeps a pre-activation above its threshold. circuit-tracer reads such a folder given
its absolute path (`ReplacementModel.from_pretrained(model, "/abs/folder")`, which reads the
`layer_*.safetensors` of the folder) or its config (`load_transcoders(config)`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor

from circuitforge.manifest import write_manifest

REQUIRED = ("W_enc", "W_dec", "b_enc", "b_dec")
OPTIONAL = ("W_skip", "activation_function.threshold")
MODEL_KIND = "transcoder_set"


def write_transcoder_set(
    folder: Path,
    layers: dict[int, dict[str, Tensor]],
    feature_input_hook: str,
    feature_output_hook: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `layers` (layer -> tensors, circuit-tracer's names) as a transcoder set with a sha256
    manifest; beside the target first, then moved into place (an interrupted write leaves the
    previous set whole)."""
    folder = Path(folder).absolute()
    if sorted(layers) != list(range(len(layers))):
        raise ValueError(
            f"a transcoder set needs layers 0..n-1 with none missing, got {sorted(layers)}"
        )
    staging = folder.with_name(folder.name + ".writing")
    old = folder.with_name(folder.name + ".old")
    for stale in (staging, old):
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir(parents=True)
    for layer, tensors in layers.items():
        check_layer(tensors, f"layer {layer}")
        save_file({k: v.contiguous() for k, v in tensors.items()}, staging / layer_file(layer))
    config = {
        "model_kind": MODEL_KIND,
        "feature_input_hook": feature_input_hook,
        "feature_output_hook": feature_output_hook,
        "scan": folder.name,
        "transcoders": [str(folder / layer_file(layer)) for layer in sorted(layers)],
        **(extra or {}),
    }
    (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    write_manifest(staging)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def layer_file(layer: int) -> str:
    return f"layer_{layer}.safetensors"


def check_layer(tensors: dict[str, Tensor], where: str) -> None:
    """The names and shapes of one layer's tensors, as circuit-tracer reads them."""
    missing = [k for k in REQUIRED if k not in tensors]
    unknown = sorted(set(tensors) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise ValueError(f"{where}: tensors missing {missing}, not in the format {unknown}")
    d_transcoder, d_model = tensors["W_enc"].shape
    shapes = {
        "W_dec": (d_transcoder, d_model),
        "b_enc": (d_transcoder,),
        "b_dec": (d_model,),
        "W_skip": (d_model, d_model),
        "activation_function.threshold": (d_transcoder,),
    }
    for name, shape in shapes.items():
        if name in tensors and tuple(tensors[name].shape) != shape:
            raise ValueError(f"{where}: {name} has shape {tuple(tensors[name].shape)}, not {shape}")


def read_transcoder_set(folder: Path) -> tuple[dict[str, Any], dict[int, dict[str, Tensor]]]:
    """(config, layer -> tensors) of a transcoder-set folder, checked against the format."""
    folder = Path(folder)
    config_path = folder / "config.yaml"
    if not config_path.is_file():
        raise ValueError(f"{folder} is not a transcoder set: it has no config.yaml")
    config = yaml.safe_load(config_path.read_text())
    if config.get("model_kind") != MODEL_KIND:
        raise ValueError(f"{config_path}: model_kind is {config.get('model_kind')!r}")
    for key in ("feature_input_hook", "feature_output_hook"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"{config_path}: {key} is missing")
    files = sorted(folder.glob("layer_*.safetensors"), key=lambda p: int(p.stem.split("_")[1]))
    numbers = [int(p.stem.split("_")[1]) for p in files]
    if numbers != list(range(len(files))) or not files:
        raise ValueError(f"{folder}: layer files {numbers} are not layers 0..n-1")
    listed = [Path(p).name for p in config.get("transcoders", [])]
    if listed and listed != [p.name for p in files]:
        raise ValueError(f"{config_path}: transcoders lists {listed}, the folder has other files")
    layers = {}
    for layer, path in zip(numbers, files):
        layers[layer] = load_file(str(path))
        check_layer(layers[layer], str(path))
    return config, layers


def transcoder_output(tensors: dict[str, Tensor], x: Tensor) -> Tensor:
    """What one layer's transcoder writes for input `x` (circuit-tracer's forward)."""
    pre = x @ tensors["W_enc"].T + tensors["b_enc"]
    threshold = tensors.get("activation_function.threshold")
    acts = pre.relu() if threshold is None else pre * (pre > threshold)
    out = acts @ tensors["W_dec"] + tensors["b_dec"]
    if "W_skip" in tensors:
        out = out + x @ tensors["W_skip"].T
    return out

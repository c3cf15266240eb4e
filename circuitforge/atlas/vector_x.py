"""Vector X: the residual stream at a neuron's strongest context, read back from the atlas.

`read_atlas_entry` picks a neuron's top context out of `atlas.json` (or the atlas maximum);
`reload_document` re-reads that document exactly as the atlas did (same source, same token
format) and checks the trigger token is where the atlas says; `vector_x` re-runs it and returns
`blocks.{S}.hook_resid_pre` at the trigger position, with the neuron's activation there.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.atlas.documents import DocumentFormat
from circuitforge.data.texts import load_texts
from circuitforge.file_checks import DamagedFileError, read_json_object
from circuitforge.model import hooks
from circuitforge.model.tokenizer import decode, tokenizer_of

ATLAS_FIELDS = ("hook_name", "layer", "neurons", "data")  # what every reader of an atlas uses


@dataclass(frozen=True)
class AtlasEntry:
    neuron: int
    layer: int
    text_index: int
    token_position: int
    trigger_token: str
    activation: float  # as recorded by the atlas
    data: dict  # the atlas's `data` block: source, text_field, max_tokens, prepend_bos


def read_atlas_entry(path: str | Path, neuron: int | None = None, rank: int = 0) -> AtlasEntry:
    """The `rank`-th context of `neuron` (of the atlas maximum when `neuron` is None).

    A `*` in `path` picks the newest match (`runs/atlas_demo/version_*/results/atlas.json`).
    """
    path, atlas = load_atlas(path)
    if not atlas.get("hook_name", "").endswith("mlp.hook_post"):
        raise ValueError(f"{path} profiles {atlas.get('hook_name')}, not MLP neurons")
    neurons = atlas["neurons"]
    if neuron is None:
        seen = {u: e for u, e in neurons.items() if e["top_k"]}
        neuron = int(max(seen, key=lambda u: seen[u]["activation"]))
    if str(neuron) not in neurons:
        raise ValueError(f"neuron {neuron} out of range: {path} has {len(neurons)} neurons")
    top = neurons[str(neuron)]["top_k"]
    if not 0 <= rank < len(top):
        raise ValueError(f"neuron {neuron} has {len(top)} contexts in {path}; rank {rank} asked")
    c = top[rank]
    return AtlasEntry(
        neuron,
        atlas["layer"],
        c["text_index"],
        c["token_position"],
        c["trigger_token"],
        c["activation"],
        atlas["data"],
    )


def load_atlas(path: str | Path) -> tuple[Path, dict]:
    """The atlas file (a `*` picks the newest match) and its contents (`.json`, or the shipped
    `.json.gz`)."""
    path = newest_match(str(path)) if "*" in str(path) else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"atlas {path} does not exist: build it first with an atlas config "
            "(python train.py predict --config configs/atlas/demo.yaml, or the model's own)"
        )
    atlas = read_json_object(path, "atlas", ATLAS_FIELDS)  # one line for a damaged file
    if not isinstance(atlas["neurons"], dict) or not isinstance(atlas["data"], dict):
        raise DamagedFileError(f"atlas {path}: its neurons and data are not JSON objects")
    return path, atlas


def newest_match(pattern: str) -> Path:
    # glob.glob takes absolute patterns too (Path().glob refuses them)
    found = sorted(map(Path, glob.glob(pattern)), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no atlas matches {pattern}: build it first "
            "(python train.py predict --config configs/atlas/demo.yaml)"
        )
    return found[-1]


def reload_document(model: HookedTransformer, entry: AtlasEntry) -> list[int]:
    """The token ids of the entry's document, as the atlas ran them (trigger token checked)."""
    data = entry.data
    text = load_texts(data["source"], entry.text_index + 1, data["text_field"])[entry.text_index]
    tokenizer = tokenizer_of(model)
    ids = DocumentFormat(data["max_tokens"], data["prepend_bos"]).token_ids(tokenizer, text)
    pos = entry.token_position
    found = decode(tokenizer, [ids[pos]]) if pos < len(ids) else None
    if found != entry.trigger_token:
        raise ValueError(
            f"document {entry.text_index} of {data['source']} holds {found!r} at position {pos}, "
            f"not the atlas's trigger token {entry.trigger_token!r}: another corpus or tokenizer"
        )
    return ids


@torch.no_grad()
def vector_x(
    model: HookedTransformer,
    ids: list[int],
    source_layer: int,
    position: int,
    layer: int,
    neuron: int,
) -> tuple[Float[Tensor, " d_model"], float]:
    """`blocks.{source_layer}.hook_resid_pre[position]` and `blocks.{layer}.mlp.hook_post[position,
    neuron]` of the document `ids`, in one forward that stops after `layer`."""
    seen: dict[str, Tensor] = {}

    def keep(act: Tensor, hook) -> None:
        seen[hook.name] = act[0, position].detach().float().cpu()

    resid, post = hooks.resid_pre(source_layer), hooks.mlp_post(layer)
    tokens = torch.tensor([ids], device=model.embed.W_E.device)
    model.run_with_hooks(tokens, fwd_hooks=[(resid, keep), (post, keep)], stop_at_layer=layer + 1)
    return seen[resid], float(seen[post][neuron])


@dataclass(frozen=True)
class AtlasSeed:
    entry: AtlasEntry
    vector: Float[Tensor, " d_model"]  # Vector X
    original_activation: float  # the neuron at the trigger, recomputed on the re-loaded document


def atlas_seeds(
    model: HookedTransformer,
    atlas: str | Path,
    neurons: list[int] | None,
    source_layer: int,
    target_layer: int,
) -> list[AtlasSeed]:
    """Vector X (at `blocks.{source_layer}.hook_resid_pre`) of each neuron's top context; of
    the atlas maximum when `neurons` is None."""
    asked = [None] if neurons is None else neurons
    seeds = []
    for neuron in asked:
        entry = read_atlas_entry(atlas, neuron)
        if entry.layer != target_layer:
            raise ValueError(
                f"{atlas} profiles layer {entry.layer}, but the target neuron is in layer "
                f"{target_layer}: use an atlas of layer {target_layer}"
            )
        ids = reload_document(model, entry)
        x, activation = vector_x(
            model, ids, source_layer, entry.token_position, target_layer, entry.neuron
        )
        # batched vs alone (and GPU vs CPU) differ in the last bits: bf16 keeps about 3 digits
        tol = 1e-3 if model.cfg.dtype == torch.float32 else 3e-2
        if abs(activation - entry.activation) > tol * max(1.0, abs(entry.activation)):
            raise ValueError(
                f"neuron {entry.neuron} re-run on document {entry.text_index} gives "
                f"{activation:.4f} at position {entry.token_position}, the atlas recorded "
                f"{entry.activation:.4f}: "
                "the atlas was built with another model"
            )
        seeds.append(AtlasSeed(entry, x, activation))
    return seeds

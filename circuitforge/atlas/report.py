"""The atlas as data: per unit its top-k contexts (re-read from the documents), mean, fraction
active; written as `atlas.json` (fields of the original atlas) and `atlas.parquet` (one row per
unit and rank).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from circuitforge.atlas.profile import NeuronProfile
from circuitforge.atlas.top_k import EMPTY
from circuitforge.atomic_files import write_text_atomically, write_with
from circuitforge.results import strict_json


@dataclass(frozen=True)
class AtlasContext:
    activation: float
    text_index: int  # absolute index of the document in the dataset
    token_position: int  # position in the document's token ids (<bos> is 0)
    trigger_token: str
    context: str  # `window` tokens either side, the trigger in [[ ]]


def context_window(
    decode: Callable[[list[int]], str], ids: list[int], pos: int, window: int
) -> str:
    """The text around `ids[pos]`, the trigger in [[ ]]; spacing as the tokenizer decodes it."""
    start, end = max(0, pos - window), pos + 1 + window
    before, through, after = (
        decode(ids[start:pos]),
        decode(ids[start : pos + 1]),
        decode(ids[start:end]),
    )
    if not (
        through.startswith(before) and after.startswith(through)
    ):  # decode is not prefix-stable
        return f"{before}[[{decode([ids[pos]])}]]{decode(ids[pos + 1 : end])}"
    return f"{before}[[{through[len(before) :]}]]{after[len(through) :]}"


def atlas_contexts(
    profile: NeuronProfile,
    stride: int,
    document_ids: Callable[[int], list[int]],
    decode: Callable[[list[int]], str],
    window: int = 8,
) -> list[list[AtlasContext]]:
    """Per unit, its top-k contexts, best first.

    Each document is re-read with `document_ids` (once) and must hold, at the stored position,
    the token the profile saw there: a mismatch means the corpus or its tokenisation changed
    between the run and the report, and raises.
    """
    values, ids = profile.top.values_and_ids()
    keys, tokens = profile.top.keys.cpu(), profile.top.token.cpu()
    values, ids = values.cpu().tolist(), ids.cpu().tolist()
    documents: dict[int, list[int]] = {}
    out: list[list[AtlasContext]] = []
    for unit in range(keys.shape[1]):
        found = []
        for rank in range(keys.shape[0]):
            if keys[rank, unit] == EMPTY:
                break
            doc, pos = divmod(ids[rank][unit], stride)
            if doc not in documents:
                documents[doc] = document_ids(doc)
            doc_ids, seen = documents[doc], int(tokens[rank, unit])
            if pos >= len(doc_ids) or doc_ids[pos] != seen:
                raise RuntimeError(
                    f"document {doc} re-loaded does not hold token {seen} at position {pos}: "
                    "the corpus or the tokenizer changed since the activations were recorded"
                )
            context = context_window(decode, doc_ids, pos, window)
            found.append(AtlasContext(values[rank][unit], doc, pos, decode([seen]), context))
        out.append(found)
    return out


def atlas_json(contexts: list[list[AtlasContext]], profile: NeuronProfile, header: dict) -> dict:
    """`{**header, "neurons": {"<unit>": {activation, text_index, token_position,
    trigger_token, context, mean_activation, fraction_active, top_k: [...]}}}`; the first five
    fields are the unit's maximum, as in the original atlas."""
    mean, active = profile.mean().tolist(), profile.fraction_active().tolist()
    neurons = {}
    for unit, found in enumerate(contexts):
        best = asdict(found[0]) if found else {}
        neurons[str(unit)] = {
            **best,
            "mean_activation": mean[unit],
            "fraction_active": active[unit],
            "top_k": [asdict(c) for c in found],
        }
    return {**header, "n_tokens": int(profile.n_tokens), "neurons": neurons}


def write_atlas(out_dir: Path, atlas: dict, parquet: bool = True) -> list[Path]:
    """`atlas.json` (atomically) and, when asked, `atlas.parquet`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = write_text_atomically(out_dir / "atlas.json", strict_json(atlas, "atlas", indent=None))
    written = [path]
    if parquet:
        written.append(_write_parquet(out_dir / "atlas.parquet", atlas["neurons"]))
    return written


def _write_parquet(path: Path, neurons: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list] = {
        "neuron": [],
        "rank": [],
        "activation": [],
        "text_index": [],
        "token_position": [],
        "trigger_token": [],
        "context": [],
        "mean_activation": [],
        "fraction_active": [],
    }
    for unit, entry in neurons.items():
        for rank, c in enumerate(entry["top_k"]):
            columns["neuron"].append(int(unit))
            columns["rank"].append(rank)
            for name in ("activation", "text_index", "token_position", "trigger_token", "context"):
                columns[name].append(c[name])
            columns["mean_activation"].append(entry["mean_activation"])
            columns["fraction_active"].append(entry["fraction_active"])
    return write_with(path, lambda tmp: pq.write_table(pa.table(columns), tmp))

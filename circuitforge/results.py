"""Result files: `{log_dir}/results/<name>.json` = the newest result plus its `history`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circuitforge.atomic_files import write_text_atomically


@dataclass(frozen=True)
class AnalysisResult:
    """What an analysis run leaves for its export: the JSON fields, pictures (name -> an RGB
    array [height, width, 3]) and markdown tables (name -> text) for TensorBoard."""

    json: dict[str, Any]
    pictures: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)


class NonFiniteResult(ValueError):
    """A result holds NaN or infinity, which strict JSON cannot hold and no reader should get."""


def non_finite_fields(value: Any, where: str = "") -> list[str]:
    """The dotted paths of the NaN / infinite floats inside `value`."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{where or '(value)'} = {value}"]
    if isinstance(value, dict):
        items = [(f"{where}.{k}".lstrip("."), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    else:
        return []
    return [found for path, v in items for found in non_finite_fields(v, path)]


def strict_json(value: Any, what: str, indent: int | None = 2) -> str:
    """`json.dumps` that refuses NaN and infinity, naming where they are."""
    bad = non_finite_fields(value)
    if bad:
        raise NonFiniteResult(f"{what} holds non-finite numbers ({'; '.join(bad[:5])})")
    return json.dumps(value, indent=indent, allow_nan=False) + "\n"


def per_vector(names: Sequence[str], **fields: Sequence[Any]) -> dict[str, Any]:
    """The per-vector fields of a result: `vectors` (the names) and each field as a list in the
    order of `vectors`, so a result has one shape whether the run has one vector or many."""
    if len(set(names)) != len(names):
        raise ValueError(f"vector names must be distinct, got {list(names)}")
    for name, values in fields.items():
        if len(values) != len(names):
            raise ValueError(
                f"result field {name!r} has {len(values)} values for {len(names)} vectors"
            )
    return {"vectors": list(names), **{name: list(values) for name, values in fields.items()}}


def write_result(log_dir: str | Path, name: str, result: dict[str, Any], history: list) -> Path:
    """Strict JSON, written atomically (a killed run never leaves half a file)."""
    path = Path(log_dir) / "results" / f"{name}.json"
    return write_text_atomically(path, strict_json({**result, "history": history}, str(path)))


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body

"""Result files: `{log_dir}/results/<name>.json` = the newest result plus its `history`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(log_dir: str | Path, name: str, result: dict[str, Any], history: list) -> Path:
    """Write atomically (a killed run never leaves half a file)."""
    path = Path(log_dir) / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**result, "history": history}, indent=2) + "\n")
    tmp.replace(path)
    return path


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body

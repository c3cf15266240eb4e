"""Documents from a hub dataset (`NeelNanda/pile-10k`) or a local file (.txt, .jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

from circuitforge.file_checks import read_text
from circuitforge.manifest import verify_if_listed


def load_texts(source: str, n: int | None = None, text_field: str = "text") -> list[str]:
    """The first `n` documents of `source`.

    A local `.txt` file holds one document per non-empty line; a `.jsonl` file one JSON object
    per line with the text under `text_field` (`.jsonl.gz`: the same, gzipped, as the shipped
    English corpus). Anything else is a Hugging Face dataset name.
    """
    path = Path(source)
    if path.suffix in (".txt", ".jsonl", ".json") or path.exists():
        texts = _read_local(path, text_field)
    else:
        texts = _read_hub(source, n, text_field)
    texts = texts[:n] if n is not None else texts
    if not texts:
        raise ValueError(f"{source} holds no documents")
    if n is not None and len(texts) < n:
        raise ValueError(f"{source} holds {len(texts)} documents, fewer than the {n} asked for")
    return texts


def _read_local(path: Path, text_field: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist")
    verify_if_listed(path)  # the shipped corpus is listed in its folder's manifest.json
    if path.stat().st_size == 0:
        return []  # load_texts says the file holds no documents
    text = read_text(path, "corpus")  # gzip and UTF-8 checked: one line naming the file
    if not path.name.endswith((".jsonl", ".jsonl.gz")):
        return [line for line in text.splitlines() if line.strip()]
    texts = []
    for number, line in enumerate(text.splitlines(), 1):  # numbered as an editor shows them
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON object ({error.msg})") from None
        if not isinstance(record, dict) or text_field not in record:
            raise ValueError(f"{path}:{number} has no field {text_field!r}")
        texts.append(str(record[text_field]))
    return texts


def _read_hub(name: str, n: int | None, text_field: str) -> list[str]:
    from circuitforge.hub import is_cached, require_hub

    if not is_cached(name, "README.md", repo_type="dataset"):
        require_hub(
            f"Dataset {name!r}",
            "Point data.source at a local .txt (one document per line) or .jsonl file instead.",
        )
    import datasets

    split = "train" if n is None else f"train[:{n}]"
    rows = datasets.load_dataset(_dataset_path(name), split=split)
    return [str(t) for t in rows[text_field]]


def _dataset_path(name: str) -> str:
    """`name` when the hub can be reached; offline, its snapshot in the hub cache.

    Offline, `datasets.load_dataset(name)` reads only its own arrow cache (`HF_HOME/datasets`,
    written by an earlier online load) and refuses a dataset that is only in the hub cache
    (`huggingface-cli download --repo-type dataset`); the snapshot folder loads from either.
    """
    from circuitforge.hub import hub_is_reachable

    if hub_is_reachable():
        return name
    from huggingface_hub import snapshot_download

    return snapshot_download(name, repo_type="dataset", local_files_only=True)

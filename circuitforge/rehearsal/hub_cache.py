"""Write files into a Hugging Face hub cache exactly as `huggingface_hub` lays them out.

`{HF_HOME}/hub/{models|datasets}--{org}--{name}/blobs/<sha256>` holds each file once,
`snapshots/<revision>/<path>` links to its blob, and `refs/main` names the revision, which is
what `hf_hub_download(..., local_files_only=True)` and `from_pretrained` read offline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

REVISION = "0" * 40  # a fixed, fake commit: stand-ins are regenerated, never fetched


def repo_folder(hub_dir: Path, repo_id: str, repo_type: str = "model") -> Path:
    """`models--org--name` (or `datasets--...`) under `hub_dir`, as huggingface_hub names it."""
    if repo_type not in ("model", "dataset"):
        raise ValueError(f"repo_type must be model or dataset, got {repo_type!r}")
    return hub_dir / f"{repo_type}s--{repo_id.replace('/', '--')}"


def snapshot_dir(hub_dir: Path, repo_id: str, repo_type: str = "model") -> Path:
    return repo_folder(hub_dir, repo_id, repo_type) / "snapshots" / REVISION


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def add_file(
    hub_dir: Path,
    repo_id: str,
    filename: str,
    write: Callable[[Path], object],
    repo_type: str = "model",
) -> Path:
    """Write one file of `repo_id` with `write(path)`, store it as a blob, link it in the snapshot.

    Returns the snapshot path (the one `hf_hub_download` returns).
    """
    folder = repo_folder(hub_dir, repo_id, repo_type)
    blobs = folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    tmp = blobs / f".incomplete-{filename.replace('/', '_')}"
    write(tmp)
    blob = blobs / _sha256(tmp)
    os.replace(tmp, blob)
    link = snapshot_dir(hub_dir, repo_id, repo_type) / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(blob, link.parent))
    refs = folder / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(REVISION)
    return link


def add_text(
    hub_dir: Path, repo_id: str, filename: str, text: str, repo_type: str = "model"
) -> Path:
    return add_file(hub_dir, repo_id, filename, lambda p: p.write_text(text), repo_type)


def add_copy(
    hub_dir: Path, repo_id: str, filename: str, source: Path, repo_type: str = "model"
) -> Path:
    return add_file(hub_dir, repo_id, filename, lambda p: shutil.copyfile(source, p), repo_type)

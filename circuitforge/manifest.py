"""sha256 manifests: a `manifest.json` beside files that must not change silently.

The local model directory, the shipped SAE directories and the demo corpus carry one; their
loaders check it first, so a corrupted, truncated or edited file is refused with a clear error
instead of giving a wrong result.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


class CorruptFileError(RuntimeError):
    """A file listed in a manifest is missing, truncated or altered."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path) -> dict[str, str]:
    """sha256 of every file directly in `directory` (not the manifest itself)."""
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST)
    sums = {p.name: sha256_file(p) for p in files}
    (directory / MANIFEST).write_text(json.dumps(sums, indent=2) + "\n")
    return sums


def _check(path: Path, expected: str) -> None:
    if not path.is_file():
        raise CorruptFileError(f"{path} is listed in {path.parent / MANIFEST} but missing")
    if sha256_file(path) != expected:
        raise CorruptFileError(
            f"{path} does not match its sha256 in {path.parent / MANIFEST}: the file is "
            "corrupted, truncated or was changed after saving. Restore it (git checkout) or "
            "regenerate it."
        )


def read_manifest(manifest: Path) -> dict[str, str]:
    """The `{file name: sha256}` of a manifest file, refused in one line when it is not one."""
    try:
        sums = json.loads(manifest.read_bytes())
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise CorruptFileError(
            f"{manifest} is not a readable manifest (not JSON: {error}); re-save the folder"
        ) from None
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise CorruptFileError(f"{manifest} is not a manifest (a JSON object of sha256 sums)")
    return sums


def verify_manifest(directory: Path) -> dict[str, str]:
    """Check every file listed in `directory/manifest.json`; the manifest must exist."""
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise CorruptFileError(f"{directory} has no {MANIFEST}; re-save it to write one")
    sums = read_manifest(manifest)
    for name, expected in sums.items():
        _check(directory / name, expected)
    return sums


def verify_if_listed(path: Path) -> bool:
    """Check `path` against the manifest of its folder, if there is one that lists it."""
    path = Path(path)
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return False
    sums = read_manifest(manifest)
    if path.name not in sums:
        return False
    _check(path, sums[path.name])
    return True

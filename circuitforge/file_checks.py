"""Reading a file a user pointed at, refused in one line when it is damaged.

`DamagedFileError` names the file, what it should be and what is wrong with it (empty, cut
short, not gzip, not UTF-8, not JSON, a JSON value of the wrong kind), instead of the library's
own exception (`gzip.BadGzipFile`, `json.JSONDecodeError`, a `KeyError` deep in a reader).
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any


class DamagedFileError(ValueError):
    """A file that cannot be what the setting pointing at it says (empty, cut short, another
    format)."""


def read_bytes(path: str | Path, what: str) -> bytes:
    """The bytes of `path` (decompressed when its name ends in `.gz`)."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw:
        raise DamagedFileError(f"{what} {path} is empty")
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DamagedFileError(
            f"{what} {path} is not a whole gzip file ({error}): cut short, or not gzipped "
            "(drop the .gz from its name if it is plain text)"
        ) from None


def read_text(path: str | Path, what: str) -> str:
    """The text of `path` (UTF-8; decompressed when its name ends in `.gz`)."""
    raw = read_bytes(path, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DamagedFileError(
            f"{what} {path} is not UTF-8 text (byte {error.start}: {error.reason}): "
            "a binary file, or another format"
        ) from None


def read_json(path: str | Path, what: str) -> Any:
    """The JSON value in `path` (decompressed when its name ends in `.gz`)."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DamagedFileError(
            f"{what} {path} is not valid JSON ({error.msg}: line {error.lineno} column "
            f"{error.colno}): cut short, or another format"
        ) from None


def read_json_object(path: str | Path, what: str, fields: tuple[str, ...] = ()) -> dict:
    """The JSON object in `path`, which must have every one of `fields`."""
    value = read_json(path, what)
    if not isinstance(value, dict):
        raise DamagedFileError(
            f"{what} {path} holds a JSON {type(value).__name__}, not an object: another format"
        )
    missing = [f for f in fields if f not in value]
    if missing:
        raise DamagedFileError(f"{what} {path} has no {', '.join(missing)}: another format")
    return value

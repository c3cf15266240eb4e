"""A GGUF file checked whole before anything converts it: its header, metadata and tensor table
read, and every tensor's bytes present.

transformers' reader fails on a damaged file deep inside (`unpack_from requires a buffer of at
least ...`, `cannot mmap an empty file`); this names the file and what is wrong in one line, in
well under a second (the metadata is skipped, not decoded).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from circuitforge.file_checks import DamagedFileError

MAGIC = b"GGUF"
# value type -> size in bytes of the fixed-size GGUF metadata types (8: string, 9: array)
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _CutShort(Exception):
    """The header, metadata or tensor table ends before the file does."""


class _Reader:
    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise _CutShort
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise _CutShort
        self.pos += n

    def string(self) -> bytes:
        n = self.unpack("<Q")
        start = self.pos
        self.skip(n)
        return bytes(self.data[start : self.pos])

    def skip_value(self, kind: int) -> None:
        if kind in _FIXED:
            self.skip(_FIXED[kind])
        elif kind == _STRING:
            self.skip(self.unpack("<Q"))
        elif kind == _ARRAY:
            inner, count = self.unpack("<I"), self.unpack("<Q")
            if inner in _FIXED:
                self.skip(_FIXED[inner] * count)
            else:
                for _ in range(count):
                    self.skip_value(inner)
        else:
            raise ValueError(f"unknown metadata value type {kind}")


def check_gguf_file(path: str | Path) -> None:
    """Refuse `path` in one line unless it is a whole GGUF file (v2 or v3)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DamagedFileError(f"gguf {path} is empty")
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != MAGIC:
            raise DamagedFileError(
                f"gguf {path} is not a GGUF file (it starts with {bytes(data[:4])!r}, not "
                f"{MAGIC!r})"
            )
        try:
            end = _data_end(_Reader(data))
        except _CutShort:
            raise DamagedFileError(
                f"gguf {path} is cut short ({size} bytes): its header, metadata or tensor table "
                "ends early"
            ) from None
        except ValueError as error:
            raise DamagedFileError(f"gguf {path} is damaged: {error}") from None
    if end > size:
        raise DamagedFileError(
            f"gguf {path} is cut short: {size} bytes, its tensors need {end} (a partial "
            "download or copy)"
        )


def _data_end(reader: _Reader) -> int:
    """The byte offset where the file's last tensor ends."""
    reader.skip(4)
    version = reader.unpack("<I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version}; this reader knows versions 2 and 3")
    n_tensors, n_metadata = reader.unpack("<Q"), reader.unpack("<Q")
    alignment = 32
    for _ in range(n_metadata):
        key, kind = reader.string(), reader.unpack("<I")
        if key == b"general.alignment" and kind == 4:
            alignment = reader.unpack("<I")
        else:
            reader.skip_value(kind)
    end = 0
    for _ in range(n_tensors):
        reader.string()
        dims = [reader.unpack("<Q") for _ in range(reader.unpack("<I"))]
        kind, offset = reader.unpack("<I"), reader.unpack("<Q")
        try:
            block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise ValueError(f"a tensor of unknown type {kind}") from None
        elements = 1
        for d in dims:
            elements *= d
        end = max(end, offset + elements // block * block_bytes)
    start = -(-reader.pos // alignment) * alignment  # the tensor data starts aligned
    return start + end

"""Files that are either whole or not there: checkpoints, snapshots, results, caches.

`atomic_output(path)` gives a temporary path *in the same folder* (`.{name}.tmp`); when the
writer returns, the file is fsynced, renamed over `path` (a rename within one filesystem is
atomic) and the folder is fsynced. A kill or a full disk at any moment leaves the previous
`path` as it was. (Lightning's own writer stages in the system temporary folder, so with `runs/`
on another filesystem it copies, and a full disk left a 4096-byte `last.ckpt`.)
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

TEMPORARY_SUFFIX = ".tmp"


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMPORARY_SUFFIX}")


class WriteFailed(OSError):
    """A write that did not happen; the previous file, if any, is intact."""


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """`with atomic_output(p) as tmp: write(tmp)`: afterwards `p` is the new file, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, WriteFailed):
            raise
        kept = "the previous file is intact" if path.exists() else "nothing was written"
        reason = "no space left on device" if error.errno == errno.ENOSPC else str(error)
        raise WriteFailed(error.errno, f"could not write {path}: {reason}; {kept}") from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_bytes_atomically(path, text.encode())


def torch_save_atomically(path: str | Path, obj: object) -> Path:
    """`torch.save`, atomically. Serialised in memory first: torch's own file writer reports a
    full disk as `RuntimeError: basic_ios::clear: iostream error`; Python's says ENOSPC."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomically(path, buffer.getvalue())


def write_with(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """`writer(tmp)` writes the file (e.g. `lambda p: torch.save(obj, p)`)."""
    with atomic_output(path) as tmp:
        writer(tmp)
    return Path(path)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the `.{name}.tmp` files a killed writer left in `folder` (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMPORARY_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Run `train.py` in a subprocess and `kill -9` it in the middle of writing a file.

The subprocess's `torch.save` (to a path) and `Path.write_bytes` are wrapped: when one is asked
to write a file whose name contains
`pattern` (after the first `skip` of them), it writes the first part of the bytes (as a disk
would have them when the power goes), leaves a marker, and waits to be killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, THREADS

CHILD = """
import io, os, pathlib, sys, time
import torch

marker, pattern, fraction, skip = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
real_save = torch.save

real_write_bytes = pathlib.Path.write_bytes
seen = []

def interrupted(name, data):
    # write part of data to name and wait for the kill, if name is the file to kill at
    if not (pattern and pattern in pathlib.Path(name).name):
        return
    if len(seen) < skip:
        seen.append(name)
        return
    with open(name, "wb") as out:
        out.write(data[: int(len(data) * fraction)])
        out.flush()
        os.fsync(out.fileno())
    pathlib.Path(marker).touch()
    time.sleep(600)

def save(obj, f, *args, **kwargs):
    if isinstance(f, (str, os.PathLike)):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        interrupted(os.fspath(f), buffer.getvalue())
    return real_save(obj, f, *args, **kwargs)

def write_bytes(self, data):
    interrupted(str(self), bytes(data))
    return real_write_bytes(self, data)

torch.save = save
pathlib.Path.write_bytes = write_bytes
sys.path.insert(0, os.getcwd())
from train import main
main(sys.argv[5:])
"""


def kill_during_write(
    args: list[str],
    pattern: str,
    marker: Path,
    fraction: float = 0.5,
    skip: int = 0,
    timeout: float = 300,
) -> None:
    """Run `train.py args`; `kill -9` it once it is writing a file named like `pattern` (after
    `skip` such writes went through)."""
    # the test process's thread count: a resume is bit-identical only at the same count
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "OMP_WAIT_POLICY": "PASSIVE"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker), pattern, str(fraction), str(skip), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            if child.poll() is not None:
                err = child.stderr.read().decode()[-2000:] if child.stderr else ""
                raise AssertionError(f"the run ended without writing {pattern!r}:\n{err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the run did not reach the write of {pattern!r}")
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

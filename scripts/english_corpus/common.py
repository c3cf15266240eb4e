"""Constants, the package reader (installed or fetched with apt-get download) and small helpers."""

import io
import subprocess
import sys
from pathlib import Path

SEED = 20240601
OUT_DIR_DEFAULT = Path(__file__).resolve().parent.parent / "assets" / "english_corpus"

# Debian packages read by the build (all from Debian 12 "bookworm", main).
PACKAGES = [
    "wordnet-base",
    "dict-gcide",
    "dict-foldoc",
    "dict-jargon",
    "dict-devil",
    "jargon-text",
    "bible-kjv-text",
    "bible-kjv",
    "r-cran-janeaustenr",
    "python3.11-doc",
    "debian-reference-en",
    "debian-handbook",
    "gnu-standards",
    "libpython3.11-stdlib",
    "libpython3.11-minimal",
]

# Word budgets per source (whitespace words).  Sources over budget are
# sampled by whole groups (a page, a chapter, a file, an entry group) with
# a seeded shuffle; None keeps everything.
WORD_CAPS = {
    "wordnet": 300_000,
    "gcide": 330_000,
    "foldoc": 160_000,
    "jargon": None,
    "devil": None,
    "jargon-essays": None,
    "austen": None,
    "kjv": 420_000,
    "python-docs": 650_000,
    "debian-reference": 170_000,
    "debian-handbook": 230_000,
    "gnu-standards": None,
    "python-stdlib": 620_000,
}

MIN_WORDS = 20  # documents shorter than this are dropped
GROUP_TARGET = 200  # words per document of grouped dictionary entries
CHUNK_LO, CHUNK_HI = 100, 600  # target chunk range for long texts


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def nwords(s: str) -> int:
    return len(s.split())


# ----------------------------------------------------------------------------
# package access


class Packages:
    """Finds the files of the source packages under a root directory."""

    def __init__(self, root: Path, debs: dict[str, Path] | None):
        self.root = root
        self.debs = debs  # package -> .deb path (fetch mode) or None
        self._versions: dict[str, str] = {}
        self._files: dict[str, list[str]] = {}

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def version(self, pkg: str) -> str:
        if pkg not in self._versions:
            if self.debs is not None:
                out = subprocess.run(
                    ["dpkg-deb", "-f", str(self.debs[pkg]), "Version"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            else:
                out = subprocess.run(
                    ["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True
                ).stdout
            self._versions[pkg] = out.strip() or "unknown"
        return self._versions[pkg]

    def files(self, pkg: str) -> list[str]:
        """Absolute paths (as installed) of the regular files of a package."""
        if pkg not in self._files:
            if self.debs is not None:
                out = subprocess.run(
                    ["dpkg-deb", "--fsys-tarfile", str(self.debs[pkg])],
                    check=True,
                    capture_output=True,
                ).stdout
                import tarfile

                names = []
                with tarfile.open(fileobj=io.BytesIO(out)) as tf:
                    for m in tf.getmembers():
                        if m.isfile():
                            names.append("/" + m.name.lstrip("./"))
            else:
                out = subprocess.run(
                    ["dpkg-query", "-L", pkg], check=True, capture_output=True, text=True
                ).stdout
                names = [
                    ln
                    for ln in out.splitlines()
                    if ln.startswith("/")
                    and self.path(ln).is_file()
                    and not self.path(ln).is_symlink()
                ]
            self._files[pkg] = sorted(set(names))
        return self._files[pkg]


def fetch_packages(dest: Path) -> tuple[Path, dict[str, Path]]:
    debs_dir = dest / "debs"
    root = dest / "root"
    debs_dir.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_")[0]: p for p in debs_dir.glob("*.deb")}
    missing = [p for p in PACKAGES if p not in have]
    if missing:
        log("apt-get download", " ".join(missing))
        subprocess.run(["apt-get", "download", *missing], cwd=debs_dir, check=True)
    debs = {}
    for p in sorted(debs_dir.glob("*.deb")):
        name = p.name.split("_")[0]
        if name in PACKAGES:
            if name in debs:
                raise SystemExit(f"two .deb files for {name} in {debs_dir}; remove the old one")
            debs[name] = p
    marker = root / ".extracted"
    stamp = "\n".join(sorted(p.name for p in debs.values()))
    if not marker.exists() or marker.read_text() != stamp:
        root.mkdir(parents=True, exist_ok=True)
        for p in debs.values():
            subprocess.run(["dpkg-deb", "-x", str(p), str(root)], check=True)
        marker.write_text(stamp)
    return root, debs


# ----------------------------------------------------------------------------
# text helpers

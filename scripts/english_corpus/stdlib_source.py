"""Loader of the code: Python standard-library sources, chunked at blank lines."""

import re

from english_corpus.common import CHUNK_HI, nwords
from english_corpus.text import clean_text

STDLIB_SKIP = re.compile(
    r"/(test|tests|idle_test|encodings|pydoc_data|__phello__)/|/_sysconfigdata|/site-packages/"
    r"|/config-[^/]*/|/dist-packages/"
)


def chunk_code(src: str, lo=80, hi=CHUNK_HI, target=300):
    """Split Python source at blank-line boundaries, preferring top-level ones."""
    lines = src.split("\n")
    breaks = [0]
    strong = {0}
    for i in range(1, len(lines)):
        if lines[i].strip() and not lines[i - 1].strip():
            breaks.append(i)
            if not lines[i][0].isspace():
                strong.add(i)
    breaks.append(len(lines))
    blocks = [(breaks[j], breaks[j + 1]) for j in range(len(breaks) - 1)]
    chunks, start, n = [], 0, 0
    for a, b in blocks:
        w = sum(nwords(ln) for ln in lines[a:b])
        if n and (n + w > hi or (a in strong and n >= target)):
            chunks.append((start, a))
            start, n = a, 0
        if w > hi:  # one huge block: cut by lines
            acc = 0
            for i in range(a, b):
                acc += nwords(lines[i])
                if acc >= hi:
                    chunks.append((start, i + 1))
                    start, acc = i + 1, 0
            n = acc
            continue
        n += w
    if start < len(lines):
        if chunks and n < lo:
            chunks[-1] = (chunks[-1][0], len(lines))
        else:
            chunks.append((start, len(lines)))
    out = []
    for a, b in chunks:
        text = "\n".join(lines[a:b]).strip("\n")
        if text.strip():
            out.append(text)
    return out


def load_python_stdlib(pk):
    for pkg in ("libpython3.11-minimal", "libpython3.11-stdlib"):
        for f in pk.files(pkg):
            if (
                not f.startswith("/usr/lib/python3.11/")
                or not f.endswith(".py")
                or STDLIB_SKIP.search(f)
            ):
                continue
            try:
                src = pk.path(f).read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            src = clean_text(src, code=True)
            for k, chunk in enumerate(chunk_code(src)):
                yield chunk, f"{pkg}:{f}#part{k:03d}", f


# ----------------------------------------------------------------------------
# registry

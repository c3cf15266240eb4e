"""Loaders of the technical manuals: Python docs, Debian Reference and Handbook, GNU standards."""

import re

from english_corpus.text import chunk_paragraphs, html_paragraphs

SPHINX_KEEP = ("div", "role", r"^main$")
SPHINX_SKIP = [
    ("a", "class", r"\bheaderlink\b"),
    ("div", "class", r"\bsphinxsidebar\b"),
    ("div", "class", r"\brelated\b"),
    ("div", "class", r"\bfooter\b"),
    ("div", "class", r"\btoctree-wrapper\b"),
    ("span", "class", r"\blinenos\b"),
]
PYDOC_EXCLUDE = re.compile(
    r"(^|/)(genindex[^/]*|py-modindex|search|contents|download|bugs|about|copyright)\.html$"
)


def load_python_docs(pk):
    base = "/usr/share/doc/python3.11/html/"
    for f in pk.files("python3.11-doc"):
        if not f.startswith(base) or not f.endswith(".html"):
            continue
        rel = f[len(base) :]
        if rel.startswith(("_", "includes/")) or PYDOC_EXCLUDE.search(rel):
            continue
        paras = html_paragraphs(pk.path(f), keep=SPHINX_KEEP, skip=SPHINX_SKIP)
        for k, chunk in enumerate(chunk_paragraphs(paras)):
            yield chunk, f"python3.11-doc:{f}#part{k:03d}", rel


DOCBOOK_SKIP = [
    ("div", "class", r"\bnav(header|footer)\b"),
    ("div", "class", r"^toc$"),
    ("div", "class", r"\blist-of-(tables|figures|examples)\b"),
    ("div", "id", r"^banner$"),
    ("ul", "class", r"\bdocnav\b"),
    ("div", "class", r"\bindex\b"),
    ("div", "class", r"\blegalnotice\b"),
    ("div", "class", r"\brevhistory\b"),
]


def load_docbook(pk, pkg, prefix, pattern, exclude=()):
    for f in pk.files(pkg):
        if not f.startswith(prefix) or not re.search(pattern, f):
            continue
        rel = f[len(prefix) :]
        if rel in exclude:
            continue
        paras = html_paragraphs(pk.path(f), keep=("body", None, None), skip=DOCBOOK_SKIP)
        for k, chunk in enumerate(chunk_paragraphs(paras)):
            yield chunk, f"{pkg}:{f}#part{k:03d}", rel


def load_debian_reference(pk):
    return load_docbook(
        pk,
        "debian-reference-en",
        "/usr/share/debian-reference/",
        r"\.en\.html$",
        exclude=("index.en.html",),
    )


def load_debian_handbook(pk):
    return load_docbook(
        pk,
        "debian-handbook",
        "/usr/share/doc/debian-handbook/html/en-US/",
        r"/en-US/[^/]+\.html$",
        exclude=("index.html", "ix01.html"),
    )


TEXINFO_SKIP = [
    ("div", "class", r"^(header|nav-panel)$"),
    ("div", "class", r"\bcontents\b"),
    ("h2", "class", r"\bcontents-heading\b"),
    ("ul", "class", r"\b(section-toc|mini-toc)\b"),
    ("table", "class", r"\bindex-"),
    ("div", "class", r"^(printindex|index-)"),
    ("table", "class", r"\bcp-"),
]


def load_gnu_standards(pk):
    for name in ("standards.html", "maintain.html"):
        f = f"/usr/share/doc/gnu-standards/{name}"
        paras = html_paragraphs(pk.path(f), keep=("body", None, None), skip=TEXINFO_SKIP)
        # drop the appended GFDL text (it is in LICENSES.md) and the index
        cut = next(
            (
                i
                for i, (t, h) in enumerate(paras)
                if h and re.search(r"GNU Free Documentation License|^Index$", t)
            ),
            len(paras),
        )
        paras = paras[:cut]
        for k, chunk in enumerate(chunk_paragraphs(paras)):
            yield chunk, f"gnu-standards:{f}#part{k:03d}", name


# ----------------------------------------------------------------------------
# sources: code

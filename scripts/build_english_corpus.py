#!/usr/bin/env python3
"""Build the shipped real-text English corpus from Debian packages.

The corpus (``assets/english_corpus/corpus.jsonl.gz``) is human-written
English of four kinds -- ``definition``, ``prose``, ``technical`` and
``code`` -- taken only from Debian packages whose licences allow
redistribution.  Each line is one JSON object::

    {"text": ..., "kind": ..., "source": ..., "license": ...}

``source`` names the Debian package and the file or entry (and a part
number where a long text was split); it is unique per document.

Two ways to get the inputs (stdlib only; Python 3.11):

* ``--fetch DIR`` (recommended): ``apt-get download`` the packages into
  ``DIR/debs`` and unpack them with ``dpkg-deb -x`` into ``DIR/root``.
  Nothing is installed, no root needed, no daemons or R are pulled in.
* ``--root /``: read the packages as installed by
  ``apt-get install --no-install-recommends <PACKAGES>``.

The output is deterministic: inputs are read in sorted order, sampling
uses a fixed seed, documents are ordered by a seeded hash of their
``source`` and the gzip header carries no name and mtime 0.  The same
package versions (listed in the generated README) give the same bytes.

Usage::

    python3 scripts/build_english_corpus.py --fetch /tmp/english-corpus-src
    python3 scripts/build_english_corpus.py --root /   # packages installed with apt-get
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import time
import unicodedata
import zlib
from collections import OrderedDict, defaultdict
from html.parser import HTMLParser
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

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(s: str, code: bool = False) -> str:
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CTRL.sub("", s)
    if not code:
        s = unicodedata.normalize("NFC", s).replace("\u00a0", " ").replace("\t", "    ")
    lines = [ln.rstrip() for ln in s.split("\n")]
    s = "\n".join(lines)
    s = re.sub(r"\n{3,}", "\n\n", s) if not code else re.sub(r"\n{4,}", "\n\n\n", s)
    return s.strip("\n").rstrip()


def unwrap(lines) -> str:
    """Join wrapped lines of one paragraph into a single line."""
    return re.sub(r"\s+", " ", " ".join(ln.strip() for ln in lines)).strip()


def paragraphs_of(text: str) -> list[str]:
    return [unwrap(p.split("\n")) for p in re.split(r"\n\s*\n", text) if p.strip()]


_SENT = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_long(par: str, hi: int) -> list[str]:
    """Split one over-long paragraph at sentence (or line) boundaries."""
    if "\n" in par:  # preformatted: split by lines
        units, sep = par.split("\n"), "\n"
    else:
        units, sep = _SENT.split(par), " "
    out, cur, n = [], [], 0
    for u in units:
        w = nwords(u)
        if cur and n + w > hi:
            out.append(sep.join(cur))
            cur, n = [], 0
        if w > hi and sep == " ":  # a monster sentence: cut by words
            ws = u.split()
            for i in range(0, len(ws), hi):
                out.append(" ".join(ws[i : i + hi]))
            continue
        cur.append(u)
        n += w
    if cur:
        out.append(sep.join(cur))
    return out


def chunk_paragraphs(paras, lo=CHUNK_LO, hi=CHUNK_HI, target=350):
    """Pack paragraphs into chunks of about lo..hi words.

    ``paras`` is a list of str or (str, is_heading).  A heading starts a new
    chunk when the current one already has ``lo`` words.
    """
    items = []
    for p in paras:
        text, head = (p, False) if isinstance(p, str) else p
        if not text.strip():
            continue
        if nwords(text) > hi:
            items.extend((t, False) for t in split_long(text, hi))
        else:
            items.append((text, head))
    chunks, cur, n = [], [], 0
    for text, head in items:
        w = nwords(text)
        if cur and (n + w > hi or (head and n >= lo)):
            chunks.append(cur)
            cur, n = [], 0
        cur.append(text)
        n += w
        if n >= target and not head:
            chunks.append(cur)
            cur, n = [], 0
    if cur:
        tail = sum(nwords(t) for t in cur)
        if chunks and tail < lo and sum(nwords(t) for t in chunks[-1]) + tail <= hi + hi // 4:
            chunks[-1].extend(cur)
        else:
            chunks.append(cur)
    return ["\n\n".join(c) for c in chunks]


def group_entries(entries, target=None, hi=CHUNK_HI):
    """Group short dictionary entries (str) into documents of ~target words."""
    target = target or GROUP_TARGET
    docs, cur, n = [], [], 0
    for e in entries:
        w = nwords(e)
        if w > hi:
            if cur:
                docs.append("\n\n".join(cur))
                cur, n = [], 0
            docs.extend(chunk_paragraphs(e.split("\n\n"), target=target + 150))
            continue
        if cur and n + w > hi:
            docs.append("\n\n".join(cur))
            cur, n = [], 0
        cur.append(e)
        n += w
        if n >= target:
            docs.append("\n\n".join(cur))
            cur, n = [], 0
    if cur:
        docs.append("\n\n".join(cur))
    return docs


class Doc:
    __slots__ = ("text", "kind", "source", "license", "group", "src_key")

    def __init__(self, text, kind, source, license, group, src_key):
        self.text, self.kind, self.source, self.license = text, kind, source, license
        self.group, self.src_key = group, src_key


# ----------------------------------------------------------------------------
# HTML to text


class HTMLText(HTMLParser):
    """Plain text of an HTML page as (text, is_heading) paragraphs.

    Only text inside an element matching ``keep`` is kept (everything when
    keep is None); elements matching ``skip`` are dropped whole.  Matchers
    are (tag, attribute, regex) triples.
    """

    BLOCK = {
        "p",
        "div",
        "section",
        "article",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "table",
        "tr",
        "thead",
        "tbody",
        "blockquote",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "hr",
        "br",
        "figure",
        "figcaption",
        "caption",
        "header",
        "footer",
        "nav",
        "aside",
        "main",
        "body",
        "center",
    }
    HEAD = {"h1", "h2", "h3", "h4", "h5", "h6"}
    VOID = {
        "br",
        "hr",
        "img",
        "meta",
        "link",
        "input",
        "area",
        "base",
        "col",
        "embed",
        "param",
        "source",
        "track",
        "wbr",
    }
    ALWAYS_SKIP = {"script", "style", "head", "title", "noscript", "svg", "button", "form"}

    def __init__(self, keep=None, skip=()):
        super().__init__(convert_charrefs=True)
        self.keep, self.skip = keep, list(skip)
        self.paras: list[tuple[str, bool]] = []
        self.buf: list[str] = []
        self.keep_depth = 0 if keep is None else -1  # -1: not inside keep yet
        self.keep_tag = None
        self.skip_tag = None
        self.skip_depth = 0
        self.pre = 0
        self.in_head = False
        self.cell = 0
        self.bullet = False

    @staticmethod
    def _match(tag, attrs, m):
        mtag, attr, rx = m
        if mtag not in (None, tag):
            return False
        if attr is None:
            return True
        val = dict(attrs).get(attr) or ""
        return re.search(rx, val) is not None

    def flush(self):
        raw = "".join(self.buf)
        self.buf = []
        if self.pre:
            return
        text = re.sub(r"\s+", " ", raw).strip().strip(" |")
        if text:
            if self.bullet:
                text, self.bullet = "* " + text, False
            self.paras.append((text, self.in_head))

    def active(self):
        return self.keep_depth >= 0 and self.skip_tag is None

    def handle_starttag(self, tag, attrs):
        if self.skip_tag is not None:
            if tag == self.skip_tag and tag not in self.VOID:
                self.skip_depth += 1
            return
        if self.keep_depth < 0:
            if self._match(tag, attrs, self.keep):
                self.keep_depth, self.keep_tag = 1, tag
            return
        if tag == self.keep_tag and tag not in self.VOID:
            self.keep_depth += 1
        if tag in self.ALWAYS_SKIP or any(self._match(tag, attrs, m) for m in self.skip):
            if tag not in self.VOID:
                self.skip_tag, self.skip_depth = tag, 1
            return
        if tag == "pre":
            self.flush()
            self.pre += 1
            return
        if self.pre:
            if tag == "br":
                self.buf.append("\n")
            return
        if tag in self.BLOCK:
            self.flush()
            self.in_head = tag in self.HEAD
            self.bullet = tag == "li" or (self.bullet and tag not in ("ul", "ol"))
        elif tag in ("td", "th"):
            if self.cell:
                self.buf.append(" | ")
            self.cell += 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip_tag = None
            return
        if self.keep_depth < 0:
            return
        if tag == self.keep_tag:
            self.keep_depth -= 1
            if self.keep_depth == 0 and self.keep is not None:
                self.flush()
                self.keep_depth = -1
                return
        if tag == "pre" and self.pre:
            self.pre -= 1
            text = "".join(self.buf).strip("\n")
            self.buf = []
            lines = [ln.rstrip() for ln in text.split("\n")]
            while lines and not lines[-1].strip():
                lines.pop()
            text = "\n".join(lines)
            if text.strip():
                self.paras.append((text, False))
            return
        if self.pre:
            return
        if tag in self.BLOCK:
            self.flush()
            self.in_head = False
        if tag == "tr":
            self.cell = 0

    def handle_data(self, data):
        if self.active():
            self.buf.append(data)

    def close(self):
        super().close()
        self.flush()


def html_paragraphs(path: Path, keep=None, skip=()):
    raw = path.read_bytes().decode("utf-8", "replace")
    p = HTMLText(keep=keep, skip=skip)
    p.feed(raw)
    p.close()
    out = []
    for text, head in p.paras:
        text = text.replace("\u00b6", "").strip()  # sphinx permalinks
        if text and text not in ("*", "|"):
            out.append((text, head))
    return out


# ----------------------------------------------------------------------------
# sources: definitions

B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}


def dictd_entries(pk: Packages, name: str):
    """Unique (first headword, raw text, offset) entries of a dictd database, in file order."""
    base = pk.path(f"/usr/share/dictd/{name}")
    data = gzip.open(str(base) + ".dict.dz").read()
    seen = {}
    for line in open(str(base) + ".index", encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or parts[0].startswith("00"):
            continue
        off = ln = 0
        for c in parts[1]:
            off = off * 64 + B64[c]
        for c in parts[2]:
            ln = ln * 64 + B64[c]
        if (off, ln) not in seen:
            seen[(off, ln)] = (parts[0], data[off : off + ln].decode("utf-8", "replace"), off)
    return [seen[k] for k in sorted(seen)]


_BRACES = re.compile(r"\{\s*([^{}]*?)\s*\}")


def dict_entry_text(raw: str, drop_line=None, head_sep=None) -> str:
    """dictd entry -> paragraphs (wrapped lines joined).

    With ``head_sep`` the first block is the headword(s): its lines are
    joined with head_sep and put before the first paragraph of the body as
    'headword: text'."""
    raw = _BRACES.sub(r"\1", raw.replace("\r", ""))
    if drop_line is not None:
        raw = "\n".join(ln for ln in raw.split("\n") if not drop_line(ln))
    paras = []
    for j, block in enumerate(re.split(r"\n\s*\n", raw.strip("\n"))):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        if j == 0 and head_sep is not None:
            paras.append(head_sep.join(ln.strip() for ln in lines))
        else:
            paras.append(unwrap(lines))
    paras = [_BRACES.sub(r"\1", p) for p in paras]
    paras = [p for p in paras if p]
    if head_sep is not None and len(paras) >= 2:
        paras = [paras[0].rstrip(":") + ": " + paras[1]] + paras[2:]
    return "\n\n".join(paras)


_ITALIC = re.compile(r"(?<![\w_])_([^_\n][^_]*?)_(?![\w_])")


_GCIDE_TAG_RX = (
    r"\[\s*(?:(?:1913 Webster|Webster 1913 Suppl\.|Webster 1913|WordNet (?:1\.5|1\.6|sense \d+)"
    r"|PJC\.?|RJC|RDH|JW|AS|MW10|DC|Century Dict\. 1906|\+)\s*)+\]"
)
_GCIDE_TAG = re.compile(r"\s*" + _GCIDE_TAG_RX)
# the database text of an entry may end with the next headword after its tag
_GCIDE_TAIL = re.compile("(" + _GCIDE_TAG_RX + r")[ \t]+\S[^\n]*\s*\Z")
_GCIDE_PRON = re.compile(r" ?\\[^\\\n]{1,80}\\")
# pronunciations whose letters were lost in conversion, e.g. "(r?k\"t?*f?`?*b'l)"
_GCIDE_PRON2 = re.compile(r" ?\((?=[^()\s]*[?*`\"])[^()\s]{1,40}\)")


def load_gcide(pk):
    entries = []
    for _hw, raw, _ in dictd_entries(pk, "gcide"):
        raw = _GCIDE_TAIL.sub(r"\1", raw)
        raw = _GCIDE_TAG.sub("", raw)
        raw = _GCIDE_PRON.sub("", raw)
        raw = _GCIDE_PRON2.sub("", raw)
        text = dict_entry_text(raw)
        text = re.sub(r" +([,.;])", r"\1", text)
        if text:
            entries.append(text)
    for i, d in enumerate(group_entries(entries)):
        yield d, f"dict-gcide:/usr/share/dictd/gcide.dict.dz#group{i:05d}"


def load_foldoc(pk):
    # Definitions added by Debian (Dictionary.debian, appended at the end of
    # the database) carry a different licence; leave them out.
    deb = pk.path("/usr/share/doc/dict-foldoc/Dictionary.debian").read_text("utf-8", "replace")
    debian_words = [
        ln.strip().lower() for ln in deb.split("\n")[1:] if ln.strip() and not ln[0].isspace()
    ]
    date = re.compile(r"^\s*\(\d{4}-\d{2}-\d{2}\)\s*$")
    raw_entries = dictd_entries(pk, "foldoc")
    firsts = [
        off for hw, raw, off in raw_entries if hw.lower() == debian_words[0] and "<Debian>" in raw
    ]
    if not firsts:
        raise ValueError("cannot find the Debian additions in foldoc")
    debian_start = min(firsts)
    entries = []
    for _hw, raw, off in raw_entries:
        if off >= debian_start:
            continue
        text = dict_entry_text(raw, drop_line=date.match, head_sep="; ")
        if text:
            entries.append(text)
    for i, d in enumerate(group_entries(entries)):
        yield d, f"dict-foldoc:/usr/share/dictd/foldoc.dict.dz#group{i:05d}"


def load_simple_dict(pk, name, pkg, head_sep=None):
    entries = [
        _ITALIC.sub(r"\1", t)
        for t in (dict_entry_text(raw, head_sep=head_sep) for hw, raw, _ in dictd_entries(pk, name))
        if t
    ]
    for i, d in enumerate(group_entries(entries)):
        yield d, f"{pkg}:/usr/share/dictd/{name}.dict.dz#group{i:05d}"


POS = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}


def load_wordnet(pk):
    for pos in ("noun", "verb", "adj", "adv"):
        entries = []
        with open(
            pk.path(f"/usr/share/wordnet/data.{pos}"), encoding="utf-8", errors="replace"
        ) as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                head, gloss = line.split("|", 1)
                f_ = head.split()
                n = int(f_[3], 16)
                words = []
                for j in range(n):
                    w = f_[4 + 2 * j]
                    w = re.sub(r"\((?:a|p|ip)\)$", "", w).replace("_", " ")
                    if w not in words:
                        words.append(w)
                gloss = gloss.strip()
                entries.append(f"{', '.join(words)} ({POS[pos]}): {gloss}")
        for i, d in enumerate(group_entries(entries)):
            yield d, f"wordnet-base:/usr/share/wordnet/data.{pos}#group{i:05d}"


# ----------------------------------------------------------------------------
# sources: prose


class RUnserialize:
    """Minimal reader of R's XDR serialization (enough for character data)."""

    def __init__(self, data: bytes):
        self.d, self.p, self.refs = data, 0, []

    def i32(self):
        v = struct.unpack_from(">i", self.d, self.p)[0]
        self.p += 4
        return v

    def run(self):
        if self.d[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.p = 2
        ver = self.i32()
        self.i32()
        self.i32()
        if ver == 3:
            n = self.i32()
            self.p += n
        return self.item()

    def item(self):
        flags = self.i32()
        t = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if t in (254, 253, 252, 251, 250, 242, 241):
            return None
        if t == 255:
            i = flags >> 8
            return self.refs[(i or self.i32()) - 1]
        if t in (247, 248, 249):
            self.i32()
            v = [self.item() for _ in range(self.i32())]
            self.refs.append(v)
            return v
        if t == 1:
            v = ("sym", self.item())
            self.refs.append(v)
            return v
        if t in (2, 3, 5, 6, 239, 240):
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            return ("pair", tag, self.item(), self.item(), attr)
        if t == 4:
            self.i32()
            v = {"env": True}
            self.refs.append(v)
            for _ in range(4):
                self.item()
            return v
        if t == 9:
            n = self.i32()
            if n == -1:
                return None
            s = self.d[self.p : self.p + n]
            self.p += n
            return s.decode(
                "utf-8" if flags & (1 << 15) or not flags & (1 << 14) else "latin-1", "replace"
            )
        if t in (10, 13):
            n = self.i32()
            v = list(struct.unpack_from(f">{n}i", self.d, self.p))
            self.p += 4 * n
        elif t == 14:
            n = self.i32()
            v = list(struct.unpack_from(f">{n}d", self.d, self.p))
            self.p += 8 * n
        elif t in (16, 19, 20):
            v = [self.item() for _ in range(self.i32())]
        elif t == 238:
            return ("altrep", self.item(), self.item(), self.item())
        else:
            raise ValueError(f"unsupported R SEXP type {t}")
        if has_attr:
            return ("attr", v, self.item())
        return v


def r_names(obj):
    """(values, names) of an R object with a names attribute."""
    assert obj[0] == "attr"
    vals, pl = obj[1], obj[2]
    while pl is not None:
        _, tag, car, cdr, _ = pl
        if tag and tag[1] == "names":
            return vals, car
        pl = cdr
    raise ValueError("no names")


AUSTEN_TITLES = {
    "emma": "Emma",
    "mansfieldpark": "Mansfield Park",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
    "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
}


def load_austen(pk):
    base = "/usr/lib/R/site-library/janeaustenr/data/Rdata"
    idx = RUnserialize(gzip.decompress(pk.path(base + ".rdx").read_bytes())).run()
    top, top_names = r_names(idx)
    offsets, names = r_names(top[top_names.index("variables")])
    rdb = pk.path(base + ".rdb").read_bytes()
    for (off, ln), name in sorted(zip(offsets, names), key=lambda x: x[1]):
        blob = rdb[off : off + ln]
        lines = RUnserialize(zlib.decompress(blob[4:])).run()
        text = "\n".join("" if x is None else x for x in lines)
        text = _ITALIC.sub(r"\1", text)  # _italics_
        # chapters
        parts = re.split(r"\n(?=(?:CHAPTER|Chapter) [0-9IVXLC]+\.?\s*\n)", text)
        for ci, part in enumerate(parts):
            paras = paragraphs_of(part)
            heads = [
                (p, bool(re.match(r"^(CHAPTER|Chapter|VOLUME) [0-9IVXLC]+\.?$", p))) for p in paras
            ]
            for k, chunk in enumerate(chunk_paragraphs(heads)):
                yield (
                    chunk,
                    f"r-cran-janeaustenr:{base}.rdb#{name}/ch{ci:03d}/part{k:02d}",
                    f"{name}/{ci}",
                )


def load_kjv(pk):
    exe = pk.path("/usr/bin/bible")
    if not exe.exists():
        raise FileNotFoundError(exe)
    env = dict(os.environ, COLUMNS="80", LC_ALL="C")
    out = subprocess.run(
        [str(exe), "-p", str(pk.path("/usr/lib")), "gen1:1-rev22:21"],
        check=True,
        capture_output=True,
        env=env,
    ).stdout.decode("latin-1")
    chapters = []
    for line in out.split("\n"):
        if not line.strip():
            continue
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m:
            chapters[-1][1].append(m.group(2).strip())
        elif line.startswith(" "):
            chapters[-1][1][-1] += " " + line.strip()
        elif chapters and chapters[-1][1] and not re.match(r"^[1-3]?\s?[A-Z][A-Za-z ]+ \d+$", line):
            chapters[-1][1][-1] += " " + line.strip()  # wrapped continuation at column 0
        else:
            chapters.append((line.strip(), []))
    for _ci, (title, verses) in enumerate(chapters):
        paras = [(title, True)] + [(re.sub(r"\s+", " ", v), False) for v in verses]
        book = re.sub(r"\s+\d+$", "", title)
        for k, chunk in enumerate(chunk_paragraphs(paras)):
            yield (
                chunk,
                f"bible-kjv-text:/usr/lib/bible.data#{title.replace(' ', '_')}/part{k:02d}",
                f"{book}/{title}",
            )


def load_jargon_essays(pk):
    raw = (
        gzip.open(pk.path("/usr/share/doc/jargon-text/jargon.txt.gz"))
        .read()
        .decode("utf-8", "replace")
    )
    raw = raw.replace("\u00a0", " ")
    lines = raw.split("\n")
    starts = [
        i
        for i, ln in enumerate(lines)
        if re.match(r"^(Chapter \d+\.|Appendix [A-Z]\.|Glossary$|Bibliography$)", ln)
    ]
    starts.append(len(lines))
    for a, b in zip(starts, starts[1:]):
        title = lines[a].strip()
        if title in ("Glossary", "Bibliography") or title.startswith(("Chapter 3.", "Chapter 10.")):
            continue  # the lexicon itself (see dict-jargon), revision history, pronunciation key
        paras = [
            (unwrap(p.split("\n")), False)
            for p in re.split(r"\n\s*\n", "\n".join(lines[a:b]))
            if p.strip()
        ]
        paras = [(_BRACES.sub(r"\1", t), h) for t, h in paras]
        paras[0] = (paras[0][0], True)
        slug = re.sub(r"\W+", "_", title.split(".")[0])
        for k, chunk in enumerate(chunk_paragraphs(paras)):
            yield (
                chunk,
                f"jargon-text:/usr/share/doc/jargon-text/jargon.txt.gz#{slug}/part{k:02d}",
                slug,
            )


# ----------------------------------------------------------------------------
# sources: technical documentation

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

GFDL = "GFDL-1.3-or-later"
SOURCES = [
    # key, kind, package, license, loader, description
    (
        "wordnet",
        "definition",
        "wordnet-base",
        "WordNet-3.0",
        load_wordnet,
        "WordNet 3.0 synsets (lemmas, part of speech, gloss with examples), grouped in database order",
    ),
    (
        "gcide",
        "definition",
        "dict-gcide",
        "GPL-2.0-or-later",
        load_gcide,
        "GNU Collaborative International Dictionary of English (largely Webster's 1913), entries grouped alphabetically",
    ),
    (
        "foldoc",
        "definition",
        "dict-foldoc",
        "GFDL-1.1-or-later",
        load_foldoc,
        "Free On-line Dictionary of Computing, Editor Denis Howe (Debian-added entries left out)",
    ),
    (
        "jargon",
        "definition",
        "dict-jargon",
        "public-domain",
        lambda pk: load_simple_dict(pk, "jargon", "dict-jargon", head_sep=" "),
        "The Jargon File 4.4.7 lexicon entries",
    ),
    (
        "devil",
        "definition",
        "dict-devil",
        "public-domain",
        lambda pk: load_simple_dict(pk, "devil", "dict-devil"),
        "Ambrose Bierce, The Devil's Dictionary (1911)",
    ),
    (
        "austen",
        "prose",
        "r-cran-janeaustenr",
        "public-domain",
        load_austen,
        "Jane Austen's six completed novels (text public domain; package MIT), by chapter",
    ),
    (
        "kjv",
        "prose",
        ("bible-kjv-text", "bible-kjv"),
        "public-domain",
        load_kjv,
        "King James Version of the Bible (1611), by chapter, verse numbers removed",
    ),
    (
        "jargon-essays",
        "prose",
        "jargon-text",
        "public-domain",
        load_jargon_essays,
        "The Jargon File 4.4.7 essays (chapters on hacker slang and style, appendices)",
    ),
    (
        "python-docs",
        "technical",
        "python3.11-doc",
        "PSF-2.0",
        load_python_docs,
        "Python 3.11 documentation (tutorial, library and language reference, HOWTOs, FAQs), HTML to text",
    ),
    (
        "debian-reference",
        "technical",
        "debian-reference-en",
        "GPL-2.0-or-later",
        load_debian_reference,
        "Debian Reference (Osamu Aoki), English HTML to text",
    ),
    (
        "debian-handbook",
        "technical",
        "debian-handbook",
        "GPL-2.0-or-later OR CC-BY-SA-3.0",
        load_debian_handbook,
        "The Debian Administrator's Handbook (Hertzog, Mas), English HTML to text",
    ),
    (
        "gnu-standards",
        "technical",
        "gnu-standards",
        GFDL,
        load_gnu_standards,
        "GNU Coding Standards and Information for Maintainers of GNU Software, HTML to text",
    ),
    (
        "python-stdlib",
        "code",
        ("libpython3.11-minimal", "libpython3.11-stdlib"),
        "PSF-2.0",
        load_python_stdlib,
        "Python 3.11 standard-library source (.py) from libpython3.11-minimal and -stdlib, split at blank lines",
    ),
]

# Where each source's licence text is (in the package and in LICENSES.md).
COPYRIGHT_FILES = OrderedDict(
    [
        ("wordnet-base", "/usr/share/doc/wordnet-base/copyright"),
        ("dict-gcide", "/usr/share/doc/dict-gcide/copyright"),
        ("dict-foldoc", "/usr/share/doc/dict-foldoc/copyright"),
        ("dict-jargon", "/usr/share/doc/dict-jargon/copyright"),
        ("dict-devil", "/usr/share/doc/dict-devil/copyright"),
        ("jargon-text", "/usr/share/doc/jargon-text/copyright"),
        ("bible-kjv-text", "/usr/share/doc/bible-kjv-text/copyright"),
        ("r-cran-janeaustenr", "/usr/share/doc/r-cran-janeaustenr/copyright"),
        ("python3.11-doc", "/usr/share/doc/python3.11-doc/copyright"),
        ("debian-reference-en", "/usr/share/doc/debian-reference-en/copyright"),
        ("debian-handbook", "/usr/share/doc/debian-handbook/copyright"),
        ("gnu-standards", "/usr/share/doc/gnu-standards/copyright"),
        ("libpython3.11-stdlib", "/usr/lib/python3.11/LICENSE.txt"),
    ]
)
COMMON_LICENSES = [
    ("GPL-2", "/usr/share/common-licenses/GPL-2"),
    ("GFDL-1.3", "/usr/share/common-licenses/GFDL-1.3"),
]


# ----------------------------------------------------------------------------
# build


def select(docs: list[Doc], cap: int | None, rng: random.Random) -> list[Doc]:
    total = sum(nwords(d.text) for d in docs)
    if cap is None or total <= cap:
        return docs
    groups = OrderedDict()
    for d in docs:
        groups.setdefault(d.group, []).append(d)
    keys = list(groups)
    rng.shuffle(keys)
    chosen, n = set(), 0
    for k in keys:
        if n >= cap:
            break
        chosen.add(k)
        n += sum(nwords(d.text) for d in groups[k])
    return [d for d in docs if d.group in chosen]


def order_key(d: Doc) -> str:
    return hashlib.sha256(f"{SEED}:{d.source}".encode()).hexdigest()


def build(pk: Packages, only=None):
    stats = OrderedDict()
    all_docs: list[Doc] = []
    seen_text = set()
    for key, kind, pkg, lic, loader, desc in SOURCES:
        if only and key not in only:
            continue
        t0 = time.time()
        docs = []
        raw_n = 0
        for item in loader(pk):
            text, source = item[0], item[1]
            group = item[2] if len(item) > 2 else source
            text = clean_text(text, code=(kind == "code"))
            raw_n += 1
            if nwords(text) < MIN_WORDS:
                continue
            docs.append(Doc(text, kind, source, lic, group, key))
        avail_words = sum(nwords(d.text) for d in docs)
        rng = random.Random(f"{SEED}:{key}")
        docs = select(docs, WORD_CAPS.get(key), rng)
        kept = []
        dups = 0
        for d in docs:
            h = hashlib.sha256(d.text.encode("utf-8")).digest()
            if h in seen_text:
                dups += 1
                continue
            seen_text.add(h)
            kept.append(d)
        pkgs = (pkg,) if isinstance(pkg, str) else tuple(pkg)
        stats[key] = dict(
            kind=kind,
            packages=pkgs,
            license=lic,
            desc=desc,
            docs=len(kept),
            words=sum(nwords(d.text) for d in kept),
            chars=sum(len(d.text) for d in kept),
            available_words=avail_words,
            chunks=raw_n,
            duplicates=dups,
        )
        log(
            f"{key:18s} {kind:10s} docs={len(kept):6d} words={stats[key]['words']:8d} "
            f"(available {avail_words}) dups={dups} {time.time() - t0:.1f}s"
        )
        all_docs.extend(kept)
    sources = [d.source for d in all_docs]
    assert len(sources) == len(set(sources)), "duplicate source ids"
    all_docs.sort(key=order_key)
    return all_docs, stats


def write_corpus(docs, path: Path):
    """Write the gzip'd JSONL; returns (compressed size, sha256 of the JSONL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = "".join(
        json.dumps(
            {"text": d.text, "kind": d.kind, "source": d.source, "license": d.license},
            ensure_ascii=False,
        )
        + "\n"
        for d in docs
    ).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue()), hashlib.sha256(raw).hexdigest()


def fmt(n):
    return f"{n:,}"


def write_readme(path: Path, stats, pk: Packages, gz_size: int, raw_sha: str, ndocs: int):
    kinds = OrderedDict()
    for s in stats.values():
        k = kinds.setdefault(s["kind"], dict(docs=0, words=0, chars=0))
        for f in ("docs", "words", "chars"):
            k[f] += s[f]
    tot = dict(
        docs=sum(k["docs"] for k in kinds.values()),
        words=sum(k["words"] for k in kinds.values()),
        chars=sum(k["chars"] for k in kinds.values()),
    )
    pkgs_used = [p for p in PACKAGES]
    L = []
    L.append("# English corpus (real text, offline)\n")
    L.append(
        "Human-written English for running interpretability demos on a small real language "
        "model offline. Every document comes from a Debian 12 (bookworm) package whose licence "
        "allows redistribution; nothing was downloaded from a model or data-set hub.\n"
    )
    L.append("* File: `corpus.jsonl.gz` (gzip, one JSON object per line, UTF-8)")
    L.append(
        '* Record: `{"text": str, "kind": "definition"|"prose"|"technical"|"code", '
        '"source": str, "license": str}`'
    )
    L.append(
        "* `source` is `<debian-package>:<file>#<entry group or part>`, unique per document; "
        "the parts of one long text share the prefix before `#` (and, for books, the chapter)."
    )
    L.append(
        "* Order: by a seeded hash of `source` (so any prefix of the file is a mixed sample); "
        "sort by `source` to read a text in order."
    )
    L.append(
        f"* Size: {fmt(gz_size)} bytes compressed; sha256 of the uncompressed JSONL `{raw_sha}` "
        "(the compressed bytes also depend on the zlib version; this build used "
        f"{zlib.ZLIB_RUNTIME_VERSION})"
    )
    L.append(
        f"* Totals: {fmt(tot['docs'])} documents, {fmt(tot['words'])} whitespace words, "
        f"{fmt(tot['chars'])} characters; estimated tokens (words x 1.3): {fmt(int(tot['words'] * 1.3))}. "
        "Code has more tokens per word than prose, so Gemma's tokenizer will count more.\n"
    )
    L.append("## Kinds\n")
    L.append("| kind | documents | words | characters | share of words |")
    L.append("| --- | ---: | ---: | ---: | ---: |")
    for k, v in kinds.items():
        L.append(
            f"| {k} | {fmt(v['docs'])} | {fmt(v['words'])} | {fmt(v['chars'])} | "
            f"{100 * v['words'] / tot['words']:.1f}% |"
        )
    L.append(
        f"| **all** | {fmt(tot['docs'])} | {fmt(tot['words'])} | {fmt(tot['chars'])} | 100% |\n"
    )
    L.append("## Sources\n")
    L.append(
        "| source | kind | Debian packages | licence | documents | words | characters | "
        "words available |"
    )
    L.append("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for key, s in stats.items():
        L.append(
            f"| {key}: {s['desc']} | {s['kind']} | {', '.join('`' + p + '`' for p in s['packages'])} | "
            f"{s['license']} | {fmt(s['docs'])} | {fmt(s['words'])} | {fmt(s['chars'])} | "
            f"{fmt(s['available_words'])} |"
        )
    L.append("")
    L.append("Package versions read by this build (Debian 12 bookworm, `main`):\n")
    L.append("| package | version | used for |")
    L.append("| --- | --- | --- |")
    used_for = defaultdict(list)
    for key, s in stats.items():
        for p in s["packages"]:
            used_for[p].append(key)
    used_for["bible-kjv"] = ["the `bible` program that prints the KJV text"]
    for p in PACKAGES:
        L.append(f"| `{p}` | {pk.version(p)} | {', '.join(used_for.get(p, [])) or '-'} |")
    L.append("")
    L.append(
        "Sources larger than their word budget were sampled by whole groups (a dictionary's "
        "entry group, a Bible chapter, a documentation page, a source file) with a fixed seed. "
        "Budgets are `WORD_CAPS` in the build script.\n"
    )
    L.append("## Processing\n")
    L.append(
        "* Dictionaries (dictd format): the index is decoded, entries shared by several "
        "headwords are kept once, dictd metadata entries (`00-database-*`) dropped, "
        "`{cross-reference}` braces removed, wrapped lines joined. GCIDE: source tags such as "
        '`[1913 Webster]` and pronunciation keys `\\Pro*nun"ci*a`tion\\` removed. '
        'WordNet: one line per synset, `lemmas (part of speech): gloss; "examples"`. '
        f"Entries are grouped into documents of about {GROUP_TARGET} words in database order."
    )
    L.append(
        "* Austen: read from the R package's lazy-load database (R serialization parsed in "
        "Python, no R needed); `_italics_` marks removed; split by chapter. "
        "KJV: text printed by the `bible` program of `bible-kjv` "
        "(`bible -p <dir> gen1:1-rev22:21`), one verse per paragraph, numbers removed."
    )
    L.append(
        "* HTML (Python docs, Debian Reference, Debian Handbook, GNU standards): only the main "
        "body is kept; navigation, sidebars, tables of contents, indexes, permalink marks, "
        "scripts and styles are dropped; block elements become paragraphs, `<pre>` blocks keep "
        "their lines, list items start with `* `, table cells are joined by ` | `. "
        "Python docs leave out the generated indexes, search and download pages; the GNU "
        "standards leave out their appended GFDL text (it is in LICENSES.md)."
    )
    L.append(
        "* Code: `.py` files of the Python standard library as shipped by Debian, without "
        "`test`/`tests`/`idle_test` directories, `encodings/` (generated tables), "
        "`pydoc_data/` and `_sysconfigdata*`; text is verbatim, split at blank lines, "
        "preferring top-level statements."
    )
    L.append(
        f"* Long texts are split at paragraph boundaries (preferring headings) into chunks of about {CHUNK_LO}-{CHUNK_HI} "
        f"words (an over-long paragraph at sentence boundaries); documents under {MIN_WORDS} "
        "words are dropped; exact duplicate texts are kept once. Whitespace is normalised "
        "(NFC, no trailing spaces, at most one blank line) except in code.\n"
    )
    L.append("## Licences\n")
    L.append(
        "Every record carries its licence id. The full notices and licence texts that must "
        "accompany copies are in [`LICENSES.md`](LICENSES.md) (copied from each package's "
        "`/usr/share/doc/<package>/copyright`, Python's `LICENSE.txt`, and "
        "`/usr/share/common-licenses/`).\n"
    )
    L.append("| licence id | sources | text |")
    L.append("| --- | --- | --- |")
    bylic = OrderedDict()
    for key, s in stats.items():
        bylic.setdefault(s["license"], []).append(key)
    where = {
        "WordNet-3.0": "WordNet 3.0 licence (Princeton), in LICENSES.md (wordnet-base)",
        "GPL-2.0-or-later": "GNU GPL version 2, in LICENSES.md",
        "GFDL-1.1-or-later": "GNU FDL; version 1.3 in LICENSES.md",
        "GFDL-1.3-or-later": "GNU FDL version 1.3, in LICENSES.md",
        "public-domain": "public-domain statements in LICENSES.md",
        "PSF-2.0": "Python Software Foundation License version 2, in LICENSES.md",
        "GPL-2.0-or-later OR CC-BY-SA-3.0": "GPL-2 in LICENSES.md (used under the GPL option; "
        "CC-BY-SA-3.0 text in the package's copyright file)",
    }
    for lic, keys in bylic.items():
        L.append(f"| {lic} | {', '.join(keys)} | {where.get(lic, 'LICENSES.md')} |")
    L.append("")
    L.append(
        'Attribution requested by the sources: "The Free On-line Dictionary of Computing, '
        'https://foldoc.org/, Editor Denis Howe"; "The Jargon File, version 4.4.7"; '
        '"WordNet 3.0 Copyright 2006 by Princeton University". The texts were reformatted '
        "(markup removed, lines joined, split into parts) as described above; this modification "
        "notice applies to the GPL and GFDL material.\n"
    )
    L.append(
        "Notes: the Austen novels are public-domain texts; the `janeaustenr` package that "
        "ships them is MIT-licensed, and its notice is in LICENSES.md. The King James Version "
        "is public domain by Debian's statement (copyright expired; in the United Kingdom "
        "printing rights are held by the Crown under letters patent). FOLDOC definitions added "
        "by Debian (`Dictionary.debian`, under a different licence) are left out.\n"
    )
    L.append("## Rebuild\n")
    L.append(
        "Needs Debian 12 package archives (`apt-get update` done once), `dpkg-deb`, and "
        "Python 3.11 (stdlib only); the `bible` program needs `libreadline8`. Recommended, "
        "without installing anything (downloads the `.deb` files and unpacks them; about "
        "80 MB of downloads, under a minute to build):\n"
    )
    L.append("```sh")
    L.append("python3 scripts/build_english_corpus.py --fetch /tmp/english-corpus-src")
    L.append("```\n")
    L.append(
        "which runs `apt-get download " + " ".join(pkgs_used) + "` and `dpkg-deb -x` on each. "
        "Or install the packages and read them in place (this pulls in `dictd` and R):\n"
    )
    L.append("```sh")
    L.append("apt-get update && apt-get install --no-install-recommends " + " ".join(pkgs_used))
    L.append("python3 scripts/build_english_corpus.py --root /")
    L.append("```\n")
    L.append(
        "The output is byte-for-byte reproducible for the same package versions (listed in the "
        "table above; security and point releases of Debian can change `python3.11-doc` and "
        "`libpython3.11-*`)."
    )
    path.write_text("\n".join(L) + "\n", encoding="utf-8")


def write_licenses(path: Path, pk: Packages, stats):
    L = [
        "# Licences of the English corpus\n",
        "Each section below is the copyright and licence notice of one Debian package that the "
        "corpus takes text from, copied verbatim, followed by the full texts of the GNU licences "
        "they refer to. The `license` field of each record in `corpus.jsonl.gz` names the licence "
        "of that record.\n",
        "The corpus texts were modified: markup was removed, lines were joined and long texts "
        "were split into parts and sampled (see README.md). Source: Debian 12 packages, versions "
        "listed in README.md.\n",
    ]
    used_pkgs = {p for s in stats.values() for p in s["packages"]}
    toc = []
    for pkg in COPYRIGHT_FILES:
        if pkg not in used_pkgs:
            continue
        toc.append(pkg)
    L.append(
        "Contents: "
        + ", ".join(f"[{p}](#{p.replace('.', '')})" for p in toc)
        + ", [GPL-2](#gpl-2), [GFDL-1.3](#gfdl-13)\n"
    )
    for pkg in toc:
        f = COPYRIGHT_FILES[pkg]
        text = pk.path(f).read_text("utf-8", "replace")
        L.append(f"## {pkg}\n")
        L.append(
            f"From `{f}` of `{pkg}` {pk.version(pkg)}"
            + (
                " (the licence of the Python distribution; the same terms are in "
                "`/usr/share/doc/python3.11-doc/copyright` above, with the notices of "
                "incorporated software)"
                if pkg == "libpython3.11-stdlib"
                else ""
            )
            + ":\n"
        )
        L.append("```text")
        L.append(text.rstrip("\n").replace("```", "'''"))
        L.append("```\n")
    for name, f in COMMON_LICENSES:
        p = Path(f)
        if not p.exists():
            p = pk.path(f)
        L.append(f"## {name}\n")
        L.append(f"From `{f}` (Debian base-files):\n")
        L.append("```text")
        L.append(p.read_text("utf-8", "replace").rstrip("\n").replace("```", "'''"))
        L.append("```\n")
    path.write_text("\n".join(L), encoding="utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--fetch",
        type=Path,
        metavar="DIR",
        help="apt-get download the packages into DIR/debs and unpack them into DIR/root",
    )
    g.add_argument("--root", type=Path, help="read the packages as installed by dpkg (use /)")
    ap.add_argument("--out", type=Path, default=OUT_DIR_DEFAULT, help="output directory")
    ap.add_argument(
        "--only",
        nargs="*",
        help="build only these sources (for testing; pair with --out elsewhere)",
    )
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.fetch:
        root, debs = fetch_packages(args.fetch.resolve())
        pk = Packages(root, debs)
    else:
        pk = Packages(args.root.resolve(), None)
    docs, stats = build(pk, only=args.only)
    out = args.out
    corpus = out / "corpus.jsonl.gz"
    size, raw_sha = write_corpus(docs, corpus)
    write_readme(out / "README.md", stats, pk, size, raw_sha, len(docs))
    write_licenses(out / "LICENSES.md", pk, stats)
    words = sum(s["words"] for s in stats.values())
    log(
        f"wrote {corpus} ({size:,} bytes, {len(docs):,} docs, {words:,} words) in {time.time() - t0:.1f}s"
    )


if __name__ == "__main__":
    main()

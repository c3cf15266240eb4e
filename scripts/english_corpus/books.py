"""Loaders of the prose: Austen's novels (R's serialised data), the KJV, the Jargon essays."""

import gzip
import os
import re
import struct
import subprocess
import zlib

from english_corpus.dictionaries import _BRACES, _ITALIC
from english_corpus.text import chunk_paragraphs, paragraphs_of, unwrap


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
    for title, verses in chapters:
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

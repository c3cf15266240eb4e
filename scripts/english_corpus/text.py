"""Plain text from the sources: cleaning, paragraphs, chunking into documents, HTML to text."""

import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

from english_corpus.common import CHUNK_HI, CHUNK_LO, GROUP_TARGET, nwords

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

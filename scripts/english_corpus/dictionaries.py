"""Loaders of the dictionaries: GCIDE, FOLDOC, the Jargon File, the Devil's Dictionary, WordNet."""

import gzip
import re

from english_corpus.common import Packages
from english_corpus.text import B64, group_entries, unwrap


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

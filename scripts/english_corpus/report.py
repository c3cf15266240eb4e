"""The data card (README.md) and LICENSES.md written beside the corpus."""

import zlib
from collections import OrderedDict, defaultdict
from pathlib import Path

from english_corpus.common import CHUNK_HI, CHUNK_LO, GROUP_TARGET, MIN_WORDS, PACKAGES, Packages
from english_corpus.sources import COMMON_LICENSES, COPYRIGHT_FILES


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

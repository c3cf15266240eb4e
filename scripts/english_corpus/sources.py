"""The table of sources (kind, licence, loader, description) and the licence files to copy."""

from collections import OrderedDict

from english_corpus.books import load_austen, load_jargon_essays, load_kjv
from english_corpus.dictionaries import load_foldoc, load_gcide, load_simple_dict, load_wordnet
from english_corpus.manuals import (
    load_debian_handbook,
    load_debian_reference,
    load_gnu_standards,
    load_python_docs,
)
from english_corpus.stdlib_source import load_python_stdlib

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

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

import argparse
import time
from pathlib import Path

from english_corpus.assemble import build, write_corpus
from english_corpus.common import OUT_DIR_DEFAULT, Packages, fetch_packages, log
from english_corpus.report import write_licenses, write_readme


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
    seconds = time.time() - t0
    log(f"wrote {corpus} ({size:,} bytes, {len(docs):,} docs, {words:,} words) in {seconds:.1f}s")


if __name__ == "__main__":
    main()

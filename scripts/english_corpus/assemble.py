"""Sampling to the word caps, deterministic order, and the gzipped JSONL writer."""

import gzip
import hashlib
import io
import json
import random
import time
from collections import OrderedDict
from pathlib import Path

from english_corpus.common import MIN_WORDS, SEED, WORD_CAPS, Packages, log, nwords
from english_corpus.sources import SOURCES
from english_corpus.text import Doc, clean_text


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

"""A corpus-level span table for ERNIE-GEN's span-by-span targets (``zhmask span-table``).

ERNIE-GEN makes a bigram or trigram one span when it is a statistical collocation (a T-test,
:mod:`zhmask.generation.ngram_stats`).  Counted over one work unit, only the unit's most
frequent pairs pass the test; :func:`count_corpus` counts the whole corpus once instead, with
the build's own reading, normalisation and segmentation, and :func:`write_table` keeps the
n-grams whose T statistic passes ``t_min``.  A build reads the table with
``--option span_table=FILE`` (``span_stats=table``); the table's sha256 is part of the build's
fingerprint.

Memory is bounded whatever the corpus size: :class:`~zhmask.generation.ngram_stats.NgramCounter`
holds at most ``cap`` keys per order (unigram, bigram, trigram); past that, the keys with the
lowest count are dropped, repeatedly, until half remain.  The pruning depends only on the
order of the documents, so the table is deterministic for a given input.  A pruned key's
count restarts from zero if it comes back, so counts are lower bounds; a key that survives to
the end has lost at most the count it had when it was last pruned (below the counter's floor,
``NgramCounter.floor``), which the table records in its header.

The file is UTF-8 TSV: ``#`` header lines (format, words counted, threshold, cap, keys
pruned, floor), then one line per collocation ``n<TAB>words<TAB>count<TAB>t`` with the words
joined by single spaces, sorted by n, then t descending, then words.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Callable

from zhmask.errors import ZhmaskError
from zhmask.generation.ngram_stats import SEP, NgramCounter, t_stat

FORMAT = "zhmask-span-table 1"


def count_corpus(config, progress: Callable[[dict[str, Any]], None] | None = None,
                 cap: int = 2_000_000) -> NgramCounter:
    """Unigram, bigram and trigram counts of every document of ``config``'s inputs, read,
    normalised and segmented as a build with that configuration would (one unit at a time)."""
    from zhmask.api import _inputs, iter_units
    from zhmask.pipeline import Pipeline

    pipe = Pipeline(config)
    files, bad = _inputs(config)
    counter = NgramCounter(cap)
    docs = 0
    for unit, raws in iter_units(config, files, bad):
        for doc, _ in pipe.documents(raws):
            if doc is not None and doc.words is not None:
                counter.add(doc.word_texts(), doc.words.pos)
                docs += 1
        if progress is not None:
            progress({"unit": unit, "documents": docs, "words": counter.n})
    return counter


def table_rows(counter: NgramCounter, t_min: float) -> list[tuple[int, str, int, float]]:
    """(n, words joined by spaces, count, t) of every bigram and trigram whose T statistic passes
    ``t_min`` (the test of :meth:`NgramCounter.collocations`); n-grams with a word holding
    whitespace cannot be written and never pass."""
    n = counter.n
    rows: list[tuple[int, str, int, float]] = []
    if n == 0:
        return rows
    uni, bi = counter.uni, counter.bi
    for order, table in ((2, counter.bi), (3, counter.tri)):
        for key, c in table.items():
            parts = key.split(SEP)
            if any(not w or any(ch.isspace() for ch in w) for w in parts):
                continue
            if order == 2:
                p = uni.get(parts[0], 0) / n * uni.get(parts[1], 0) / n
            else:
                a, b, cc = parts
                p = max(bi.get(a + SEP + b, 0) / n * uni.get(cc, 0) / n, uni.get(a, 0) / n * bi.get(b + SEP + cc, 0) / n)
            t = t_stat(c, n, p)
            if t > t_min:
                rows.append((order, " ".join(parts), c, t))
    rows.sort(key=lambda r: (r[0], -r[3], r[1]))
    return rows


def write_table(counter: NgramCounter, path: str | Path, t_min: float = 2.576) -> dict[str, Any]:
    """Write the table of ``counter`` to ``path`` (atomically); returns its summary."""
    rows = table_rows(counter, t_min)
    path = Path(path)
    bigrams = sum(1 for r in rows if r[0] == 2)
    head = [f"# {FORMAT}", f"# words\t{counter.n}", f"# t_min\t{t_min}", f"# cap\t{counter.cap}",
            f"# keys_pruned\t{counter.pruned}", f"# floor\t{counter.floor}"]
    lines = head + ["n\twords\tcount\tt"] + [f"{n}\t{w}\t{c}\t{t:.4f}" for n, w, c, t in rows]
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ZhmaskError(f"cannot write the span table {path}: {exc.strerror or exc}") from None
    return {"out": str(path), "words": counter.n, "bigrams": bigrams, "trigrams": len(rows) - bigrams,
            "keys_pruned": counter.pruned, "floor": counter.floor, "t_min": t_min}


_CACHE: dict[tuple[str, str, float], tuple[set[str], set[str]]] = {}


def file_sha256(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ZhmaskError(f"cannot read the span table {path}: {exc.strerror or exc}") from None


def read_table(path: str | Path, t_min: float = 0.0) -> tuple[set[str], set[str]]:
    """(bigrams, trigrams) of the table at ``path`` whose T statistic passes ``t_min``, keys
    joined with :data:`~zhmask.generation.ngram_stats.SEP` as :func:`split_spans` wants them.
    A file that is not a span table is a one-line :class:`ZhmaskError` naming the line."""
    key = (str(Path(path).resolve()), file_sha256(path), float(t_min))
    got = _CACHE.get(key)
    if got is not None:
        return got
    bi: set[str] = set()
    tri: set[str] = set()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ZhmaskError(f"span table {path} is not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != f"# {FORMAT}":
        raise ZhmaskError(f"{path} is not a span table (first line should be '# {FORMAT}'; "
                          "write one with `zhmask span-table`)")
    for no, line in enumerate(lines[1:], 2):
        if not line.strip() or line.startswith("#") or line.startswith("n\t"):
            continue
        parts = line.split("\t")
        try:
            n, words, _, t = int(parts[0]), parts[1].split(" "), int(parts[2]), float(parts[3])
        except (IndexError, ValueError):
            raise ZhmaskError(f"span table {path}, line {no}: expected n<TAB>words<TAB>count<TAB>t") from None
        if n not in (2, 3) or len(words) != n or not math.isfinite(t):
            raise ZhmaskError(f"span table {path}, line {no}: n must be 2 or 3 and match the words")
        if t > t_min:
            (bi if n == 2 else tri).add(SEP.join(words))
    _CACHE[key] = (bi, tri)
    return bi, tri

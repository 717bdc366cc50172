"""``ir_relevance``: ERNIE 2.0's IR relevance task (Sun et al. 2020), 3 classes, from plain documents.

ERNIE 2.0 learns (query, title) relevance from Baidu's search logs: 0 clicked (strongly
relevant), 1 shown but not clicked (weakly relevant), 2 not shown (irrelevant).  Without click
logs this task derives the three classes from the corpus itself, a **proxy for search logs**:

* the query: the ``ir_query_keywords`` (default 4) words of the document's title (its first
  sentence when it has no title) with the highest TF-IDF weight, IDF from jieba's bundled
  ``idf.txt`` (as ``jieba.analyse.extract_tags`` does, but over the build's own segmentation;
  words of two or more characters, no stop words, no punctuation; single characters only when
  nothing longer is left), in their order in the title, joined by spaces;
* passages: each document's text without its title, that is, without every sentence that
  overlaps an occurrence of the title string (whitespace ignored; news texts often repeat it),
  cut into runs of consecutive sentences that leave room for the query; a document without a
  title loses its first sentence, which its query came from (``ir_relevance_title_sentence_dropped``
  counts the sentences dropped, ``ir_relevance_no_passage`` the documents left without text).
  So no passage contains the title its query was drawn from;
* 0 (strongly relevant): a random passage of the query's own document;
* 1 (weakly relevant): the passage that BM25 (k1 = 1.2, b = 0.75, over the words of every
  passage of the work unit) ranks highest for the query among the passages of documents whose
  text differs from the source's (never the source, nor a copy of it), skipping passages that
  hold the query's title (``ir_relevance_hit_holds_title``): retrieved, as the shown but not
  clicked results of a search are; the score must be positive;
* 2 (irrelevant): a random passage of a random document of the unit whose text differs from the
  source's and which is not among the documents of the query's ``ir_irrelevant_skip_top``
  (default 10) best BM25 passages; when the unit is too small for that, any document whose text
  differs (``ir_relevance_irrelevant_fallback``).

Row: ``[CLS] query [SEP] passage [SEP]``, the passage truncated at its end.  One example per
document, the classes balanced over the unit's documents that have a query.  The index is built
per work unit (``--docs-per-shard`` documents), so memory stays bounded and rows are the same
for any ``--workers``; a unit of one document has no class-1 candidate
(``ir_relevance_no_bm25_hit``, ``ir_relevance_no_other_document``).
"""
from __future__ import annotations

import functools
import math
from bisect import bisect_left
from collections import Counter
from typing import Any, Iterator, Sequence

import numpy as np

from zhmask.checks import register_check
from zhmask.errors import ZhmaskError
from zhmask.labels import TASKS, register
from zhmask.labels.pairs import (SPACE, PairExamples, Ranges, Segment, UnitDocs, balanced_classes, check_pair,
                                 is_punct_word, mini_docs, query_doc)
from zhmask.record import SENTENCE_LABEL, Document, Example
from zhmask.rng import Draws
from zhmask.steps.pack import pack_ranges

TASK = "ir_relevance"
OPTIONS = {"ir_query_keywords": 4, "ir_irrelevant_skip_top": 10}
CLASSES = {0: "strongly relevant: a passage of the query's own document",
           1: "weakly relevant: the top BM25 passage of another document",
           2: "irrelevant: a passage of a random other document outside the top BM25 hits"}
K1, B = 1.2, 0.75

_IDF: tuple[dict[str, float], float, frozenset[str]] | None = None


def idf_table() -> tuple[dict[str, float], float, frozenset[str]]:
    """jieba's bundled IDF table, its median, and jieba.analyse's stop words (loaded once per
    process; parsed once, then read from the lexicon cache: parsing costs about 1.4 CPU-s)."""
    global _IDF
    if _IDF is None:
        from importlib.util import find_spec
        from pathlib import Path

        from zhmask.lexcache import cached

        spec = find_spec("jieba")  # jieba's files, without importing it
        if spec is None or not spec.origin:
            t = _parse_idf()  # (raises ImportError as it always did)
        else:
            root = Path(spec.origin).parent / "analyse"  # the table, and the code with its stop words
            t = cached("jieba_idf", {"idf": [root / "idf.txt"], "tfidf": [root / "tfidf.py"]}, _parse_idf)
        _IDF = (t["idf"], t["median"], frozenset(t["stop"]))
    return _IDF


def _parse_idf() -> dict[str, Any]:
    """The bundled table, parsed (a lexicon cache miss)."""
    import jieba.analyse  # its import loads the bundled table into default_tfidf (about 1.4 s)
    from jieba.analyse.tfidf import DEFAULT_IDF

    t = jieba.analyse.default_tfidf
    if t.idf_loader.path != DEFAULT_IDF or set(t.stop_words) != t.STOP_WORDS:
        t = jieba.analyse.TFIDF()   # changed by the caller: load the bundled table afresh
    return {"idf": dict(t.idf_freq), "median": t.median_idf, "stop": sorted(t.STOP_WORDS)}


def keywords(words: list[str], k: int) -> list[str]:
    """The ``k`` words with the highest TF-IDF weight, in order of first appearance."""
    idf, median, stop = idf_table()
    cand = [w for w in words if (t := _term(w)) is not None and t not in stop]
    long = [w for w in cand if len(w.strip()) >= 2]
    cand = long or cand
    if not cand:
        return []
    tf = Counter(cand)  # its words in order of first appearance
    order = list(tf)
    best = sorted(range(len(order)), key=lambda j: (-tf[order[j]] * idf.get(order[j], median), j))[:k]
    return [order[j] for j in sorted(best)]


class BM25:
    """Okapi BM25 over term lists (k1 = 1.2, b = 0.75)."""

    def __init__(self, docs_terms: list[list[str]], k1: float = K1, b: float = B) -> None:
        self.n = len(docs_terms)
        self.k1, self.b = k1, b
        self.dl = np.array([len(t) for t in docs_terms], dtype=np.float64)
        self.avgdl = float(self.dl.mean()) if self.n and self.dl.sum() else 1.0
        # postings of every term at once: (term id, document) pairs counted by np.unique, sorted
        # by term then document; term -> its [lo, hi) slice of the document and tf arrays
        vocab: dict[str, int] = {}
        ids = np.array([vocab.setdefault(t, len(vocab)) for terms in docs_terms for t in terms], dtype=np.int64)
        n = max(self.n, 1)
        pairs, tf = np.unique(ids * n + np.repeat(np.arange(self.n), self.dl.astype(np.int64)), return_counts=True)
        self.doc, self.tf = pairs % n, tf.astype(np.float64)
        bounds = np.searchsorted(pairs // n, np.arange(len(vocab) + 1)).tolist()
        self.postings = dict(zip(vocab, zip(bounds[:-1], bounds[1:])))

    def idf(self, term: str) -> float:
        lo, hi = self.postings.get(term, (0, 0))
        return math.log(1.0 + (self.n - (hi - lo) + 0.5) / (hi - lo + 0.5))

    def scores(self, query: list[str]) -> np.ndarray:
        s = np.zeros(self.n, dtype=np.float64)
        for t in query:
            p = self.postings.get(t)
            if p is None:
                continue
            idx, tf = self.doc[p[0]:p[1]], self.tf[p[0]:p[1]]
            norm = tf + self.k1 * (1.0 - self.b + self.b * self.dl[idx] / self.avgdl)
            s[idx] += self.idf(t) * tf * (self.k1 + 1.0) / norm
        return s


def assign_classes(has_hit: list[bool], rng: Draws) -> list[int]:
    """Balanced classes for the unit's queries; class 1 only where BM25 found a weakly relevant
    document.  The per-class quotas come from :func:`balanced_classes`; queries without a hit
    take classes 0 and 2 first, the others the remaining quota at random.  -1: no class left
    (more queries without a hit than two thirds of the unit, counted as ``ir_relevance_no_bm25_hit``)."""
    n = len(has_hit)
    quota = Counter(balanced_classes(n, 3, rng))
    out = [-1] * n
    for i in rng.permutation(n).tolist():
        if not has_hit[i]:
            for c in ((0, 2) if rng.random() < 0.5 else (2, 0)):
                if quota[c] > 0:
                    quota[c] -= 1
                    out[i] = c
                    break
    rest = rng.permutation([c for c in (0, 1, 2) for _ in range(quota[c])]).tolist()
    for i in range(n):
        if has_hit[i] and rest:
            out[i] = int(rest.pop())
    return out


@functools.lru_cache(maxsize=1 << 16)
def _term(word: str) -> str | None:
    """A word's BM25 term, lower-cased; None for spaces and punctuation (cached: words repeat)."""
    return word.lower() if word.strip() and not is_punct_word(word) else None


def _terms(words: list[str]) -> list[str]:
    return [t for w in words if (t := _term(w)) is not None]


def _int_option(config, key: str, lo: int, hi: int) -> int:
    v = TASKS.option(TASK, config, key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ZhmaskError(f"--option {key}: expected an integer from {lo} to {hi}, got {v!r}")
    return v


def _validate(config) -> None:
    _int_option(config, "ir_query_keywords", 1, 64)
    _int_option(config, "ir_irrelevant_skip_top", 0, 1000)


class TitleMatcher:
    """Where ``title`` occurs in a text, whitespace ignored on both sides ("为何说奇瑞是技术达人?
    看了" is the same title as "...达人?看了"): what the regular expression of the title's
    characters joined by ``\\s*`` finds, without compiling an expression per document.  The
    text is searched with its whitespace removed (an index back into the text kept, one per
    text: the unit's documents are searched again for every query)."""

    __slots__ = ("key",)
    _squeezed: dict = {}

    def __init__(self, key: str) -> None:
        self.key = key

    @classmethod
    def squeeze(cls, text: str) -> tuple[str, Sequence[int]]:
        """``text`` without whitespace, and the position in ``text`` of each character left."""
        got = cls._squeezed.get(text)
        if got is None:
            if len(cls._squeezed) > 4096:  # a unit's documents: never many at once
                cls._squeezed.clear()
            if SPACE.search(text) is None:  # most texts: nothing to remove
                got = cls._squeezed[text] = (text, range(len(text)))
            else:
                where = [i for i, ch in enumerate(text) if not ch.isspace()]
                got = cls._squeezed[text] = ("".join(text[i] for i in where), where)
        return got

    def finditer(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) of each occurrence, left to right, never overlapping."""
        s, where = self.squeeze(text)
        k, n = self.key, len(self.key)
        i = s.find(k)
        while i >= 0:
            yield where[i], where[i + n - 1] + 1
            i = s.find(k, i + n)

    def search(self, text: str, pos: int, endpos: int) -> bool:
        """Whether an occurrence lies wholly inside ``text[pos:endpos]``."""
        s, where = self.squeeze(text)
        return s.find(self.key, bisect_left(where, pos), bisect_left(where, endpos)) >= 0


def title_pattern(title: str) -> TitleMatcher | None:
    """The :class:`TitleMatcher` of ``title``; None for a title of whitespace only."""
    key = SPACE.sub("", title)
    return TitleMatcher(key) if key else None


def title_free_ranges(doc: Document, title: TitleMatcher | None, ranges: Ranges) -> tuple[list[Ranges], int]:
    """``ranges`` (sentence token ranges of ``doc``) without the sentences that overlap an
    occurrence of the title (:func:`title_pattern`) in the text, as runs of the sentences left
    between two dropped ones, and how many sentences were dropped: a passage never contains the
    title it was drawn from (news texts often repeat it), and never bridges a dropped sentence
    (a passage is a span of the text, as its ``segment_sources`` entry says)."""
    sents = doc.sentences
    if title is None or not len(ranges) or sents is None or not len(sents):
        return ([list(ranges)] if len(ranges) else []), 0
    drop = np.zeros(len(sents), dtype=bool)
    for a, b in title.finditer(doc.text):
        drop |= (sents[:, 0] < b) & (sents[:, 1] > a)
    if not drop.any():
        return [list(ranges)], 0
    first = np.array([a for a, _ in ranges], dtype=np.int64)
    sent_of = np.searchsorted(sents[:, 0], doc.tokens.starts[first], side="right") - 1
    runs: list[Ranges] = []
    run: Ranges = []
    for r, s in zip(ranges, sent_of.tolist()):
        if drop[s]:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(r)
    if run:
        runs.append(run)
    return runs, int(drop.sum())


def holds(doc: Document, ranges: Ranges, title: TitleMatcher | None) -> bool:
    """Whether one of the token ranges of ``doc`` holds the title."""
    st, en = doc.tokens.starts, doc.tokens.ends
    return title is not None and any(title.search(doc.text, int(st[a]), int(en[b - 1])) for a, b in ranges)


def chunk_terms(doc: Document, words: list[str], chunks: list[Ranges]) -> list[list[str]]:
    """BM25 terms of the words of each passage (token ranges) of ``doc`` (``words``: its word texts)."""
    terms = [_term(w) for w in words]
    out = []
    for ranges in chunks:
        w = np.concatenate([doc.tokens.word[a:b] for a, b in ranges])
        w = w[np.r_[True, w[1:] != w[:-1]]]  # a word once per occurrence, not once per token
        out.append([t for i in w.tolist() if (t := terms[i]) is not None])
    return out


@register(TASK, options=OPTIONS, validate=_validate,
          columns=("segment_sources",),
          traits=("pairs", "sentence_label", "other_documents"), help="title/body relevance in three classes (ERNIE 2.0)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    if not docs:
        return
    k = _int_option(ctx.config, "ir_query_keywords", 1, 64)
    skip_top = _int_option(ctx.config, "ir_irrelevant_skip_top", 0, 1000)
    max_tokens = ctx.config.max_seq_length - 3
    budget = max(1, max_tokens - min(max_tokens // 4, 3 * k))  # room left for the query
    unit = UnitDocs(docs, max_tokens, ctx.ent_cache)
    with_title = [d for d in docs if d.title]
    made = dict(zip([d.id for d in with_title], mini_docs(ctx, [(f"{d.id}#title", d.title) for d in with_title])))
    titles = [made.get(d.id) for d in docs]
    # per document: the words its query comes from, and its passages: its text without the title
    # (or without its first sentence when it has no title), in chunks of consecutive sentences
    query_words: list[list[str]] = []
    patterns: list[TitleMatcher | None] = []
    chunk_ranges: list[Ranges] = []
    chunk_doc: list[int] = []
    doc_chunks: list[list[int]] = []
    chunk_words: list[list[str]] = []
    for i, (d, t) in enumerate(zip(docs, titles)):
        words = d.word_texts()
        if t is not None and len(t.tokens):
            query_words.append(t.word_texts())
            title = d.title or ""
        else:  # no title: the first sentence stands for it
            end = int(d.sentences[0, 1])
            query_words.append([w for w, s in zip(words, d.words.starts.tolist()) if s < end])
            title = d.text[int(d.sentences[0, 0]):end]
        patterns.append(title_pattern(title))
        runs, dropped = title_free_ranges(d, patterns[-1], unit.ranges(i))
        if dropped:
            ctx.events["ir_relevance_title_sentence_dropped"] += dropped
        # short_seq_prob 0: greedy chunks, no draw (no random values are taken)
        chunks = [c for run in runs for c in pack_ranges(run, budget, 0.0, None)]
        doc_chunks.append(list(range(len(chunk_ranges), len(chunk_ranges) + len(chunks))))
        chunk_ranges += chunks
        chunk_doc += [i] * len(chunks)
        chunk_words += chunk_terms(d, words, chunks) if chunks else []
    index = BM25(chunk_words)
    chunk_key = unit.keys[np.array(chunk_doc, dtype=np.int64)] if chunk_doc else unit.keys[:0]
    no_passage = {i for i, c in enumerate(doc_chunks) if not c}
    queries: list[tuple[int, list[str]]] = []
    for i, words in enumerate(query_words):
        q = keywords(words, k)
        if not q:
            ctx.events["ir_relevance_no_query"] += 1
        elif i in no_passage:
            ctx.events["ir_relevance_no_passage"] += 1
        else:
            queries.append((i, q))
    # BM25 ranking of the other documents' passages (positive scores only), per query
    hits: list[np.ndarray] = []
    for i, q in queries:
        scores = index.scores(_terms(q))
        cand = np.flatnonzero((chunk_key != unit.keys[i]) & (scores > 0))
        ranked = cand[np.argsort(-scores[cand], kind="stable")]
        # the weakly relevant passage must not hold the query's title either (a page quoting it)
        n = 0
        while n < len(ranked) and holds(docs[chunk_doc[ranked[n]]], chunk_ranges[ranked[n]], patterns[i]):
            n += 1
        if n:
            ctx.events["ir_relevance_hit_holds_title"] += n
            ranked = ranked[n:]
        hits.append(ranked)
    labels = assign_classes([len(h) > 0 for h in hits], ctx.rng(docs[0].id, "ir_relevance_label", len(docs)))

    pairs = PairExamples(ctx, TASK)
    for (i, q), ranked, label in zip(queries, hits, labels):
        doc = docs[i]
        rng = ctx.rng(doc.id, "ir_relevance_pick")
        if label < 0:
            ctx.events["ir_relevance_no_bm25_hit"] += 1
            continue
        if label == 1:
            c = int(ranked[0])
        else:
            if label == 0:
                j: int | None = i
            else:
                top_docs = list(dict.fromkeys(chunk_doc[h] for h in ranked.tolist()))[:skip_top]
                j = unit.pick_other(i, rng, exclude=set(top_docs) | no_passage)
                if j is None:
                    j = unit.pick_other(i, rng, exclude=no_passage)
                    if j is None:
                        ctx.events["ir_relevance_no_other_document"] += 1
                        continue
                    ctx.events["ir_relevance_irrelevant_fallback"] += 1
            c = doc_chunks[j][int(rng.integers(len(doc_chunks[j])))]
        qdoc = query_doc(ctx, f"{doc.id}#query", q)
        a = Segment(qdoc, [(0, len(qdoc.tokens))], source_id=doc.id, span=False)
        if len(a) == 0:
            ctx.events["ir_relevance_no_query"] += 1
            continue
        passage = Segment(docs[chunk_doc[c]], chunk_ranges[c])
        pairs.add(a, passage, example_id=f"{doc.id}#{TASK}0", label=label, doc_id=doc.id)
    yield from pairs.build()


@register_check(TASK)
def check_ir_relevance(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_pair(row, ctx, 3)
    src = row.get("segment_sources") or []
    if not bad and len(src) == 2:
        if src[0]["doc_id"] != row["doc_id"]:
            bad.append("the query does not come from the row's document")
        elif (row[SENTENCE_LABEL] == 0) != (src[1]["doc_id"] == row["doc_id"]):
            bad.append(f"label {row[SENTENCE_LABEL]} but the passage is {'' if row[SENTENCE_LABEL] else 'not '}the query's document")
    return bad

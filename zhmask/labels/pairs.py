"""Shared machinery of the sentence-level and word-aware tasks (see docs/labels.md).

* :class:`Segment`: token ranges of one document plus where they came from; the
  ``segment_sources`` column records, per segment, ``(doc_id, start, end)`` (a character span of
  the document's normalised text, from the first range's start to the last range's end, or
  ``-1, -1`` when the segment is not a span of the text: an IR query).
* :class:`UnitDocs`: "another document" inside one work unit (the bounded buffer).  Documents
  are identified by a hash of their whitespace-free normalised text, so a copy of the source
  document (de-duplicated or not) never counts as "another document".
* :func:`truncate_pair`: BERT-style truncation of two segments, the longer trimmed first, at
  word boundaries; segment A loses tokens at its front and B at its back, so that the junction
  between them (what NSP, SOP, sentence distance and discourse relations are about) survives.
* :class:`PairExamples`: ``[CLS] A [SEP] B [SEP]`` with token types 0/1 and word ids numbered
  across the example, a unit's pairs assembled at once.
* :func:`balanced_classes`: class labels drawn before the example is built, balanced per
  document (or per unit): every class gets ``floor(n/k)`` or ``ceil(n/k)`` of the ``n`` draws,
  the classes that get one more chosen at random, the order a random permutation.  Each label
  is marginally uniform, and the build-wide share stays within a few draws of ``1/k``.
* :func:`mini_docs`: documents for short texts a task makes (titles), through the pipeline's
  own document stages; :func:`query_doc`: a query's keywords as a document, a word each.
* :func:`check_pair`: the row invariants of pair tasks for ``zhmask verify``.
"""
from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from zhmask.record import SENTENCE_LABEL, Document, Example, Tokens, Words
from zhmask.rng import Draws
from zhmask.steps.pack import build_example, build_examples, unit_table

Ranges = list[tuple[int, int]]


# ---------------------------------------------------------------------------------- segments
@dataclass
class Segment:
    doc: Document
    ranges: Ranges
    source_id: str | None = None  # default: doc.id
    span: bool = True  # False: not a span of the document's text (start = end = -1)

    def __len__(self) -> int:
        return sum(b - a for a, b in self.ranges)

    def source(self) -> dict[str, Any]:
        toks = self.doc.tokens
        if not self.span or not self.ranges or toks is None:
            return {"doc_id": self.source_id or self.doc.id, "start": -1, "end": -1}
        return {"doc_id": self.source_id or self.doc.id, "start": int(toks.starts[self.ranges[0][0]]),
                "end": int(toks.ends[self.ranges[-1][1] - 1])}


def ranges_len(ranges: Sequence[tuple[int, int]]) -> int:
    return sum(b - a for a, b in ranges)


def _flat_words(doc: Document, ranges: Ranges) -> np.ndarray:
    w = doc.tokens.word
    # ranges of one document never share a word across a gap: offset each range so that
    # equality means "same word, contiguous"
    parts = [w[a:b].astype(np.int64) + (k << 32) for k, (a, b) in enumerate(ranges)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _keep(ranges: Ranges, lo: int, hi: int) -> Ranges:
    """Tokens [lo, hi) of the flattened ranges, as ranges."""
    out: Ranges = []
    pos = 0
    for a, b in ranges:
        n = b - a
        s, e = max(lo - pos, 0), min(hi - pos, n)
        if s < e:
            out.append((a + s, a + e))
        pos += n
    return out


def trim(seg: Segment, n_keep: int, from_front: bool, events=None) -> Segment:
    """``seg`` cut to at most ``n_keep`` tokens at a word boundary (front or back removed)."""
    total = len(seg)
    if n_keep >= total:
        return seg
    w = _flat_words(seg.doc, seg.ranges)
    if from_front:
        cut = total - n_keep  # first kept token
        c = cut
        while 0 < c < total and w[c] == w[c - 1]:
            c += 1
        if c >= total:  # one word longer than what is left: cut inside it
            c = cut
            if events is not None:
                events["pair_word_cut"] += 1
        return Segment(seg.doc, _keep(seg.ranges, c, total), seg.source_id, seg.span)
    c = n_keep  # first removed token
    while 0 < c < total and w[c] == w[c - 1]:
        c -= 1
    if c <= 0:
        c = n_keep
        if events is not None:
            events["pair_word_cut"] += 1
    return Segment(seg.doc, _keep(seg.ranges, 0, c), seg.source_id, seg.span)


def truncate_pair(a: Segment, b: Segment, max_tokens: int, events=None) -> tuple[Segment, Segment]:
    """BERT's rule (trim the longer side until both fit), A from its front, B from its back."""
    la, lb = len(a), len(b)
    excess = la + lb - max_tokens
    if excess <= 0:
        return a, b
    if events is not None:
        events["pair_truncated"] += 1
    d = abs(la - lb)
    first = min(excess, d)
    rest = excess - first
    if la >= lb:
        la -= first + (rest + 1) // 2
        lb -= rest // 2
    else:
        lb -= first + (rest + 1) // 2
        la -= rest // 2
    return trim(a, max(la, 1), True, events), trim(b, max(lb, 1), False, events)


def segments_example(segments: Sequence[Segment], ctx, *, task: str, example_id: str, label: int,
                     doc_id: str) -> Example:
    ex = build_example([(s.doc, s.ranges) for s in segments], cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id,
                       task=task, example_id=example_id, doc_id=doc_id, label=label, ent_cache=ctx.ent_cache)
    ex.extra["segment_sources"] = [s.source() for s in segments]
    return ex


class PairExamples:
    """A unit's ``[CLS] A [SEP] B [SEP]`` examples: :meth:`add` truncates a pair to
    ``--max-seq-length`` (counting into ``events``, default ``ctx.events``, as it goes), and
    :meth:`build` assembles them all at once (:func:`zhmask.steps.pack.build_examples`)."""

    def __init__(self, ctx, task: str, events=None) -> None:
        self.ctx, self.task = ctx, task
        self.events = ctx.events if events is None else events
        self.items: list[tuple] = []
        self.sources: list[list[dict[str, Any]]] = []

    def add(self, a: Segment, b: Segment, *, example_id: str, label: int, doc_id: str) -> None:
        a, b = truncate_pair(a, b, self.ctx.config.max_seq_length - 3, self.events)
        self.items.append(([(a.doc, a.ranges), (b.doc, b.ranges)], self.task, example_id, doc_id, label))
        self.sources.append([a.source(), b.source()])

    def build(self) -> list[Example]:
        ctx = self.ctx
        exs = build_examples(self.items, cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id, ent_cache=ctx.ent_cache)
        for ex, src in zip(exs, self.sources):
            ex.extra["segment_sources"] = src
        return exs


# ---------------------------------------------------------------------------------- classes
def balanced_classes(n: int, k: int, rng: Draws) -> list[int]:
    """``n`` labels in ``range(k)``, each class ``floor(n/k)`` or ``ceil(n/k)`` times, shuffled."""
    if n <= 0:
        return []
    c = (np.arange(n) + int(rng.integers(k))) % k
    return rng.permutation(c).tolist()


# ---------------------------------------------------------------------------------- documents
SPACE = re.compile(r"\s+")  # whitespace, as str.isspace() finds it


def text_key(text: str) -> int:
    """Identity of a document's text: identical texts (up to whitespace) are one document."""
    h = hashlib.blake2b(SPACE.sub("", text).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little")


class UnitDocs:
    """The documents of one work unit, for draws from "another document"."""

    def __init__(self, docs: list[Document], max_tokens: int, ent_cache: dict | None = None) -> None:
        self.docs = docs
        self.max_tokens = max_tokens
        self.ent_cache = ent_cache  # the unit's, to share its token table and ranges with other tasks
        self.keys = np.array([text_key(d.text) for d in docs], dtype=np.uint64)
        self._ranges: dict[int, Ranges] = {}

    def ranges(self, i: int) -> Ranges:
        """Sentence token ranges of document i (long sentences cut at word starts), as
        :func:`zhmask.steps.pack.sentence_token_ranges` gives them, from the unit's
        :class:`zhmask.steps.pack.UnitRanges`."""
        r = self._ranges.get(i)
        if r is None:
            r = self._ranges[i] = self._unit_ranges.doc_ranges(i)
        return r

    @functools.cached_property
    def _unit_ranges(self):
        return unit_table(self.docs, self.ent_cache).ranges(self.max_tokens)

    def others(self, i: int) -> np.ndarray:
        """Indices of the documents whose text differs from document i's."""
        return np.flatnonzero(self.keys != self.keys[i])

    def pick_other(self, i: int, rng: Draws, exclude: set[int] | None = None) -> int | None:
        cand = self.others(i)
        if exclude:
            keep = np.ones(len(self.docs), dtype=bool)
            keep[list(exclude)] = False
            cand = cand[keep[cand]]
        if len(cand) == 0:
            return None
        return int(cand[int(rng.integers(len(cand)))])

    def random_run(self, j: int, n_tokens: int, rng: Draws) -> Ranges:
        """Consecutive sentences of document j from a random one, until ``n_tokens`` are reached."""
        r = self.ranges(j)
        if not r:
            return []
        k = int(rng.integers(len(r)))
        out: Ranges = []
        total = 0
        while k < len(r) and (not out or total < n_tokens):
            out.append(r[k])
            total += r[k][1] - r[k][0]
            k += 1
        return out


# ---------------------------------------------------------------------------------- small texts
def mini_docs(ctx, items: Sequence[tuple[str, str]]) -> list[Document]:
    """A :class:`Document` for each (id, short text) a task makes (titles; texts normalised
    already), through the pipeline's own document stages (``ctx.enrich``), all at once."""
    docs = [Document(doc_id, text) for doc_id, text in items]
    ctx.enrich([d for d in docs if d.text])
    for d in docs:
        if not d.text:
            _empty(d)
    return docs


def _empty(doc: Document) -> Document:
    z = np.zeros(0, np.int32)
    doc.sentences = np.zeros((0, 2), np.int32)
    doc.words = Words(z, z, [])
    doc.tokens = Tokens(z, z, z, z)
    return doc


def query_doc(ctx, doc_id: str, words: list[str]) -> Document:
    """A :class:`Document` of a query's keywords: the words joined by spaces, each one word."""
    text = " ".join(words)
    if not text:
        return _empty(Document(doc_id, text))
    lens = np.array([len(w) for w in words], dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]]).astype(np.int32)
    w = Words(starts, (starts + lens).astype(np.int32), ["x"] * len(words))
    doc = Document(doc_id, text, sentences=np.array([[0, len(text)]], dtype=np.int32), words=w)
    doc.tokens = ctx.tok.tokenize(text, w)
    return doc


@functools.lru_cache(maxsize=1 << 16)
def is_punct_word(text: str) -> bool:
    """A word made only of punctuation, symbols or spaces (cached: words repeat, and the tasks
    ask about every word of a unit)."""
    return all(unicodedata.category(ch)[0] in "PSZC" for ch in text)


# ---------------------------------------------------------------------------------- verify
def ints(v) -> list[int]:
    return [] if v is None else [int(x) for x in v]


def sep_positions(row: dict[str, Any], ctx: dict[str, Any]) -> list[int]:
    """Positions of [SEP]: special tokens (word id -1) carrying the [SEP] id (never masked)."""
    ids, wid = ints(row.get("input_ids")), ints(row.get("word_ids"))
    return [i for i, (x, w) in enumerate(zip(ids, wid)) if w == -1 and x == ctx.get("sep_id")]


def check_sources(row: dict[str, Any], n_segments: int) -> list[str]:
    src = row.get("segment_sources")
    if src is None or len(src) != n_segments:
        return [f"segment_sources does not list the {n_segments} segment(s)"]
    for s in src:
        if not s.get("doc_id") or not ((s["start"] == -1 and s["end"] == -1) or 0 <= s["start"] < s["end"]):
            return ["segment_sources entry without a document or with an empty span"]
    return []


def check_pair(row: dict[str, Any], ctx: dict[str, Any], n_classes: int) -> list[str]:
    """``[CLS] A [SEP] B [SEP]``: token types 0 then 1, both segments non-empty, a class label."""
    bad: list[str] = []
    label = row.get(SENTENCE_LABEL)
    if label is None or not 0 <= label < n_classes:
        bad.append(f"label {label!r} not in 0..{n_classes - 1}")
    ids, tt = ints(row.get("input_ids")), ints(row.get("token_type_ids"))
    seps = sep_positions(row, ctx)
    if len(seps) != 2 or seps[1] != len(ids) - 1:
        return bad + ["not [CLS] A [SEP] B [SEP] (two [SEP], the last at the end)"]
    p = seps[0]
    if p < 2 or seps[1] - p < 2:
        bad.append("segment A or B is empty")
    if any(t != 0 for t in tt[:p + 1]) or any(t != 1 for t in tt[p + 1:]):
        bad.append("token_type_ids are not 0 over [CLS] A [SEP] and 1 over B [SEP]")
    if row.get("token_labels") is not None:
        bad.append("token_labels set on a sentence-level task")
    return bad + check_sources(row, 2)


# ---------------------------------------------------------------------------------- chunks
# ---------------------------------------------------------------------------------- many at once
def batched(fast, docs: list[Document], ctx, task: str):
    """A task generator's body: ``fast(docs, events)`` builds every example of the unit at once,
    counting events into its own counter (added to ``ctx.events`` when it succeeds).  A crash is
    narrowed by bisection over the documents (``fast`` on halves) and raised as
    :class:`zhmask.pipeline.DocumentCrash` naming the document that raises alone."""
    from collections import Counter

    from zhmask.errors import ZhmaskError

    events: Counter = Counter()
    try:
        exs = fast(docs, events)
    except ZhmaskError:
        raise
    except Exception as exc:
        from zhmask.pipeline import DocumentCrash, narrow

        bad, err = narrow(lambda part: fast(part, Counter()), docs)
        if bad is None:
            raise DocumentCrash(f"task {task} crashed on documents {docs[0].id} .. {docs[-1].id} together "
                                f"(none alone): {type(exc).__name__}: {exc}") from exc
        raise DocumentCrash(f"task {task} crashed on document {bad.id}: {type(err).__name__}: {err}") from err
    ctx.events.update(events)
    return exs


def unit_two_part_chunks(docs: list[Document], ctx, task: str, events) -> tuple[Any, Iterator[list[tuple[int, int, int]]]]:
    """:func:`two_part_chunks` of every document of the unit: the unit's
    :class:`zhmask.steps.pack.UnitRanges` and an iterator over the documents giving, per document,
    ``(r0, rm, r1)`` indices into those ranges (A = ranges r0..rm, B = rm..r1), with the same
    draws; each document's events are counted when the iterator reaches it."""
    ur = unit_table(docs, ctx.ent_cache).ranges(ctx.config.max_seq_length - 3)
    return ur, _iter_two_part_chunks(docs, ctx, task, events, ur)


def _iter_two_part_chunks(docs, ctx, task, events, ur):
    from zhmask.steps.pack import pack_ends

    max_tokens = ctx.config.max_seq_length - 3
    ssp = ctx.config.short_seq_prob
    doc_events = ur.events_by_doc() if ur.events else {}
    lengths = (ur.b - ur.a).tolist()
    roff = ur.roff.tolist()
    single = f"{task}_single_sentence_chunk"
    for d, doc in enumerate(docs):
        for e in doc_events.get(d, ()):
            events[e] += 1
        lo = roff[d]
        ends = pack_ends(lengths[lo:roff[d + 1]], max_tokens, ssp, ctx.rng(doc.id, f"{task}_pack"))
        rng = None
        prev = 0
        chunks = []
        for end in ends:
            n = end - prev
            if n < 2:
                events[single] += 1
            else:
                if rng is None:
                    rng = ctx.rng(doc.id, f"{task}_split")
                j = int(rng.integers(1, n))
                chunks.append((lo + prev, lo + prev + j, lo + end))
            prev = end
        yield chunks


def pair_rows(ur, firsts: list[tuple[int, int]], seconds: list[tuple[int, int]]):
    """Rows, segment documents/examples/indices for examples ``[CLS] A [SEP] B [SEP]`` whose A and
    B are runs of consecutive ranges ``[r0, r1)`` of ``ur``: ``firsts[e]``, ``seconds[e]``."""
    from zhmask.steps.pack import interval_rows

    n = len(firsts)
    r0 = np.empty(2 * n, dtype=np.int64)
    r1 = np.empty(2 * n, dtype=np.int64)
    if n:
        f, s = np.array(firsts, dtype=np.int64), np.array(seconds, dtype=np.int64)
        r0[0::2], r1[0::2], r0[1::2], r1[1::2] = f[:, 0], f[:, 1], s[:, 0], s[:, 1]
    rows = interval_rows(ur, r0, r1)
    seg_ex = np.repeat(np.arange(n, dtype=np.int64), 2)
    seg_k = np.tile(np.array([0, 1], dtype=np.int64), n)
    return rows, r0, r1, seg_ex, seg_k


def span_sources(ur, r0: np.ndarray, r1: np.ndarray, seg_doc: np.ndarray) -> list[dict[str, Any]]:
    """:meth:`Segment.source` of segments made of the (non-empty) range runs ``[r0, r1)``."""
    table = ur.table
    first = ur.a[r0]
    last = ur.b[r1 - 1] - 1
    st = table.starts[first].tolist()
    en = table.ends[last].tolist()
    docs = table.docs
    return [{"doc_id": docs[d].id, "start": int(a), "end": int(b)} for d, a, b in zip(seg_doc.tolist(), st, en)]

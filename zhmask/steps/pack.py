"""Packing documents into examples: token ranges, BERT-style accumulation, example assembly.

Sentences are the packing unit.  A sentence longer than the budget is cut at word
boundaries, never inside a word (a single word longer than the budget, which needs a run of
hundreds of word pieces, is cut and counted as ``long_word_split``).  Sentences of one document
accumulate until the example's target length is reached; with probability
``short_seq_prob`` the target is drawn uniformly from [2, max] as BERT does, so that the model
also sees short inputs.
"""
from __future__ import annotations

import weakref
from bisect import bisect_left
from collections import Counter
from typing import Sequence

import numpy as np

from zhmask.record import Document, Example
from zhmask.rng import Draws


def sentence_token_ranges(doc: Document, max_tokens: int, stats: Counter | None = None) -> list[tuple[int, int]]:
    """Per sentence, the [a, b) range of document tokens; long sentences cut at word starts."""
    toks = doc.tokens
    assert toks is not None and doc.sentences is not None
    if len(toks) == 0:
        return []
    bounds = np.searchsorted(toks.starts, doc.sentences[:, 0], side="left").tolist() + [len(toks)]
    out: list[tuple[int, int]] = []
    word = toks.word
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        while b - a > max_tokens:
            # last word start in (a, a + max_tokens]
            cut = a + max_tokens
            while cut > a and word[cut] == word[cut - 1]:
                cut -= 1
            if cut == a:  # one word longer than the budget
                cut = a + max_tokens
                if stats is not None:
                    stats["long_word_split"] += 1
            elif stats is not None:
                stats["long_sentence_split"] += 1
            out.append((a, cut))
            a = cut
        out.append((a, b))
    return out


def pack_ranges(ranges: list[tuple[int, int]], max_tokens: int, short_seq_prob: float,
                rng: Draws) -> list[list[tuple[int, int]]]:
    """Group consecutive sentence ranges into chunks of at most ``max_tokens`` tokens."""
    chunks: list[list[tuple[int, int]]] = []

    def target() -> int:
        if short_seq_prob > 0 and rng.random() < short_seq_prob:
            return int(rng.integers(2, max_tokens + 1))
        return max_tokens

    cur: list[tuple[int, int]] = []
    cur_len = 0
    tgt = target()
    for a, b in ranges:
        n = b - a
        if cur and cur_len + n > max_tokens:
            chunks.append(cur)
            cur, cur_len, tgt = [], 0, target()
        cur.append((a, b))
        cur_len += n
        if cur_len >= tgt:
            chunks.append(cur)
            cur, cur_len, tgt = [], 0, target()
    if cur:
        chunks.append(cur)
    return chunks


def entity_token_spans(doc: Document) -> list[tuple[int, int, str]]:
    """Document entities as [start, end) token ranges (entities with no token dropped)."""
    toks = doc.tokens
    if not doc.entities or toks is None or len(toks) == 0:
        return []
    ents = doc.entities
    # one searchsorted for every entity start and end
    ab = np.searchsorted(toks.starts, [sp.start for sp in ents] + [sp.end for sp in ents], side="left").tolist()
    n = len(ents)
    return [(a, b, sp.type) for sp, a, b in zip(ents, ab[:n], ab[n:]) if b > a]


def build_example(segments: Sequence[tuple[Document, list[tuple[int, int]]]], *, cls_id: int, sep_id: int,
                  task: str, example_id: str, doc_id: str | None = None, label: int = -100,
                  ent_cache: dict[str, list[tuple[int, int, str]]] | None = None) -> Example:
    """[CLS] seg0 [SEP] (seg1 [SEP] ...): each segment is a list of token ranges of one document.

    ``word_ids`` are renumbered from 0 over the example; entity spans falling wholly inside one
    contiguous range are carried over to example positions.
    """
    # The token ranges of a segment are mostly contiguous (consecutive sentences): they are
    # coalesced first, so an example costs a handful of numpy calls instead of several per range.
    # word_ids count words over the example: a token starts a word when it follows a special
    # token or its document word differs from the previous token's (as over the concatenation).
    seg_ids: list[np.ndarray] = []
    seg_words: list[np.ndarray] = []
    entities: list[tuple[int, int, str]] = []
    pos = 1
    for doc, ranges in segments:
        toks = doc.tokens
        assert toks is not None
        ents = None
        if ent_cache is not None:
            ents = ent_cache.get(doc.id)
            if ents is None:
                ents = ent_cache[doc.id] = entity_token_spans(doc)
        spans: list[list[int]] = []
        e_starts = [e[0] for e in ents] if ents else None
        if e_starts and e_starts != sorted(e_starts):
            e_starts = None  # not sorted by start (never from entity_token_spans): scan them all
        for a, b in ranges:
            if e_starts is not None:  # entities starting in [a, b), in order, that end by b
                k = bisect_left(e_starts, a)
                while k < len(e_starts) and e_starts[k] < b:
                    ea, eb, et = ents[k]  # type: ignore[index]
                    if eb <= b:
                        entities.append((pos + ea - a, pos + eb - a, et))
                    k += 1
            elif ents:
                for ea, eb, et in ents:
                    if ea >= a and eb <= b:
                        entities.append((pos + ea - a, pos + eb - a, et))
            pos += b - a
            if spans and spans[-1][1] == a:
                spans[-1][1] = b
            elif b > a:
                spans.append([a, b])
        pos += 1
        if len(spans) == 1:
            a, b = spans[0]
            seg_ids.append(toks.ids[a:b])
            seg_words.append(toks.word[a:b])
        else:
            seg_ids.append(np.concatenate([toks.ids[a:b] for a, b in spans]) if spans else toks.ids[:0])
            seg_words.append(np.concatenate([toks.word[a:b] for a, b in spans]) if spans else toks.word[:0])
    n_seg = len(seg_ids)
    total = 1 + sum(len(x) + 1 for x in seg_ids)
    ids = np.empty(total, dtype=np.int32)
    tt = np.zeros(total, dtype=np.int8)
    wid = np.full(total, -1, dtype=np.int32)
    ids[0] = cls_id
    p, base = 1, 0
    for seg_i in range(n_seg):
        x, w = seg_ids[seg_i], seg_words[seg_i]
        m = len(x)
        ids[p:p + m] = x
        ids[p + m] = sep_id
        if seg_i:
            tt[p:p + m + 1] = seg_i
        if m:
            change = np.empty(m, dtype=bool)
            change[0] = True
            np.not_equal(w[1:], w[:-1], out=change[1:])
            c = np.cumsum(change)
            wid[p:p + m] = c + (base - 1)
            base += int(c[-1])
        p += m + 1
    return Example(
        doc_id=doc_id or segments[0][0].id,
        example_id=example_id,
        task=task,
        input_ids=ids,
        token_type_ids=tt,
        word_ids=wid,
        label=label,
        entities=entities,
    )


# ---------------------------------------------------------------------------------- many at once
# The build packs a whole work unit at once: the per-document choices (chunk boundaries, splits,
# labels) stay plain Python over sentence lengths, drawn from the same generators in the same
# order as above, and every example of the unit is then assembled by a few numpy calls over the
# documents' token arrays laid end to end (:class:`TokenTable`).  The results equal those of
# sentence_token_ranges / pack_ranges / entity_token_spans / build_example, which stay the
# reference (tests/steps/test_pack.py compares them).
_DOC_SHIFT = 32  # token table keys: document index << 32 | character offset


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _excl_cumsum(n: np.ndarray) -> np.ndarray:
    out = np.zeros(len(n), dtype=np.int64)
    if len(n) > 1:
        np.cumsum(n[:-1], out=out[1:])
    return out


class TokenTable:
    """The tokens of several documents end to end: document ``d`` owns global token positions
    ``off[d] .. off[d + 1]``."""

    def __init__(self, docs: Sequence[Document]) -> None:
        self.docs = list(docs)
        toks = [d.tokens for d in self.docs]
        if any(t is None for t in toks):
            raise ValueError("a document without tokens")
        lens = np.fromiter((len(t) for t in toks), dtype=np.int64, count=len(toks))
        self.lens = lens
        self.off = np.zeros(len(toks) + 1, dtype=np.int64)
        np.cumsum(lens, out=self.off[1:])
        self.ids = _cat([t.ids for t in toks], np.int32)
        self.word = _cat([t.word for t in toks], np.int32)
        self._starts: np.ndarray | None = None
        self._ends: np.ndarray | None = None
        self._keys: np.ndarray | None | bool = None
        self.ent_memo: dict[int, tuple] = {}  # see _unit_entities
        self.ent_batches: list[tuple] = []
        # weak values: a UnitRanges refers to its table, so a plain dict here would make a reference
        # cycle that keeps the unit's documents alive until a full garbage collection
        self._ranges: weakref.WeakValueDictionary[int, UnitRanges] = weakref.WeakValueDictionary()

    def ranges(self, max_tokens: int) -> "UnitRanges":
        r = self._ranges.get(max_tokens)
        if r is None:
            r = self._ranges[max_tokens] = UnitRanges(self, max_tokens)
        return r

    @property
    def starts(self) -> np.ndarray:
        if self._starts is None:
            self._starts = _cat([d.tokens.starts for d in self.docs], np.int32)
        return self._starts

    @property
    def ends(self) -> np.ndarray:
        if self._ends is None:
            self._ends = _cat([d.tokens.ends for d in self.docs], np.int32)
        return self._ends

    def doc_of(self, pos: np.ndarray) -> np.ndarray:
        """The document owning each global token position."""
        return np.searchsorted(self.off, pos, side="right") - 1

    def keys(self) -> np.ndarray | None:
        """``d << 32 | start`` per token (sorted), so that one searchsorted answers for every
        document; None when some document's token starts are negative or unsorted."""
        if self._keys is None:
            starts = self.starts.astype(np.int64)
            ok = len(starts) == 0 or (int(starts.min()) >= 0 and int(starts.max()) < (1 << _DOC_SHIFT))
            keys = None
            if ok:
                keys = starts + np.repeat(np.arange(len(self.docs), dtype=np.int64) << _DOC_SHIFT, self.lens)
                if len(keys) > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
                    keys = None
            self._keys = keys if keys is not None else False
        return self._keys if self._keys is not False else None  # type: ignore[return-value]

    def search(self, doc_idx: np.ndarray, chars: np.ndarray) -> np.ndarray:
        """Per (document, character offset): the global position of the document's first token
        starting at or after it (``np.searchsorted(doc.tokens.starts, c, "left")`` + ``off[d]``)."""
        doc_idx = np.asarray(doc_idx, dtype=np.int64)
        chars = np.asarray(chars, dtype=np.int64)
        keys = self.keys()
        if keys is not None:
            q = (doc_idx << _DOC_SHIFT) + np.clip(chars, 0, (1 << _DOC_SHIFT) - 1)
            return np.searchsorted(keys, q, side="left")
        out = np.empty(len(chars), dtype=np.int64)
        for k, (d, c) in enumerate(zip(doc_idx.tolist(), chars.tolist())):
            out[k] = int(np.searchsorted(self.docs[d].tokens.starts, c, side="left")) + int(self.off[d])
        return out


_TABLE_KEY = ("zhmask.steps.pack", "TokenTable")  # never a document id (those are strings)


def unit_table(docs: Sequence[Document], ent_cache: dict | None) -> TokenTable:
    """The :class:`TokenTable` of a unit's documents, shared by the unit's tasks through
    ``ent_cache`` (which the pipeline starts afresh for every unit)."""
    t = ent_cache.get(_TABLE_KEY) if ent_cache is not None else None
    if t is not None and len(t.docs) == len(docs) and all(a is b for a, b in zip(t.docs, docs)):
        return t
    t = TokenTable(docs)
    if ent_cache is not None:
        ent_cache[_TABLE_KEY] = t
    return t


class UnitRanges:
    """:func:`sentence_token_ranges` of every document of a :class:`TokenTable`, as global token
    positions: document ``d``'s ranges are ``a[roff[d]:roff[d + 1]]``, ``b[...]``; ``events``
    lists the (document index, event) pairs sentence_token_ranges would have counted, in order."""

    def __init__(self, table: TokenTable, max_tokens: int) -> None:
        docs = table.docs
        n_sent = []
        parts = []
        for d in docs:
            assert d.sentences is not None
            s = d.sentences
            parts.append(s[:, 0] if len(s) else np.zeros(0, np.int64))
            n_sent.append(len(s))
        ns = np.array(n_sent, dtype=np.int64)
        # a document without tokens has no ranges
        ns[table.lens == 0] = 0
        sent_doc = np.repeat(np.arange(len(docs), dtype=np.int64), ns)
        sent_start = _cat([p for p, n, L in zip(parts, n_sent, table.lens.tolist()) if L > 0 and n],
                          np.int64)
        a = table.search(sent_doc, sent_start)
        b = np.empty_like(a)
        if len(a):
            b[:-1] = a[1:]
            last = np.cumsum(ns)[ns > 0] - 1
            b[last] = table.off[1:][ns > 0]
        keep = b > a
        a, b, sent_doc = a[keep], b[keep], sent_doc[keep]
        self.events: list[tuple[int, str]] = []
        long = np.flatnonzero((b - a) > max_tokens)
        if len(long):
            word = table.word
            pa, pb, pd, prev = [], [], [], 0
            for k in long.tolist():
                pa.append(a[prev:k]), pb.append(b[prev:k]), pd.append(sent_doc[prev:k])
                x, y, d = int(a[k]), int(b[k]), int(sent_doc[k])
                xs, ys = [], []
                while y - x > max_tokens:
                    cut = x + max_tokens
                    while cut > x and word[cut] == word[cut - 1]:
                        cut -= 1
                    if cut == x:
                        cut = x + max_tokens
                        self.events.append((d, "long_word_split"))
                    else:
                        self.events.append((d, "long_sentence_split"))
                    xs.append(x), ys.append(cut)
                    x = cut
                xs.append(x), ys.append(y)
                pa.append(np.array(xs, dtype=np.int64)), pb.append(np.array(ys, dtype=np.int64))
                pd.append(np.full(len(xs), d, dtype=np.int64))
                prev = k + 1
            pa.append(a[prev:]), pb.append(b[prev:]), pd.append(sent_doc[prev:])
            a, b, sent_doc = np.concatenate(pa), np.concatenate(pb), np.concatenate(pd)
        self.a, self.b = a, b
        self.roff = np.searchsorted(sent_doc, np.arange(len(docs) + 1), side="left")
        self.table = table

    def events_by_doc(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for d, e in self.events:
            out.setdefault(d, []).append(e)
        return out

    def doc_ranges(self, d: int) -> list[tuple[int, int]]:
        """Document d's ranges in its own token positions (what sentence_token_ranges returns)."""
        lo, hi, o = int(self.roff[d]), int(self.roff[d + 1]), int(self.table.off[d])
        return list(zip((self.a[lo:hi] - o).tolist(), (self.b[lo:hi] - o).tolist()))


def pack_ends(lengths: Sequence[int], max_tokens: int, short_seq_prob: float,
              rng: Draws) -> list[int]:
    """:func:`pack_ranges` on range lengths: the end (exclusive index into the ranges) of each
    chunk, with the same draws."""
    ends: list[int] = []

    def target() -> int:
        if short_seq_prob > 0 and rng.random() < short_seq_prob:
            return int(rng.integers(2, max_tokens + 1))
        return max_tokens

    cur_len = 0
    start = 0
    tgt = target()
    for i, n in enumerate(lengths):
        if i > start and cur_len + n > max_tokens:
            ends.append(i)
            start, cur_len, tgt = i, 0, target()
        cur_len += n
        if cur_len >= tgt:
            ends.append(i + 1)
            start, cur_len, tgt = i + 1, 0, target()
    if start < len(lengths):
        ends.append(len(lengths))
    return ends


def _entity_arrays(table: TokenTable, idx: Sequence[int]):
    """entity_token_spans of ``table.docs[i]`` for i in ``idx`` as flat arrays: global token
    start, end, type (object array) and per-i counts; None when a document's token starts
    are not sorted (then entity_token_spans runs per document)."""
    if table.keys() is None:
        return None
    docs = table.docs
    q_doc: list[int] = []
    q_a: list[int] = []
    q_b: list[int] = []
    types: list[str] = []
    lens = table.lens
    for i in idx:
        ents = docs[i].entities
        if not ents or not lens[i]:
            continue
        q_a += [sp.start for sp in ents]
        q_b += [sp.end for sp in ents]
        types += [sp.type for sp in ents]
        q_doc += [i] * len(ents)
    n = len(types)
    qd = np.array(q_doc, dtype=np.int64)
    g = table.search(np.concatenate([qd, qd]), np.array(q_a + q_b, dtype=np.int64))
    ga, gb = g[:n], g[n:]
    keep = gb > ga
    t = np.array(types, dtype=object)
    if not bool(keep.all()):
        ga, gb, t, qd = ga[keep], gb[keep], t[keep], qd[keep]
    return ga, gb, t, qd


def unit_entity_spans(docs: Sequence[Document], table: TokenTable | None = None,
                      idx: Sequence[int] | None = None) -> list[list[tuple[int, int, str]]]:
    """:func:`entity_token_spans` of several documents (``table.docs[i]`` for i in ``idx``), with
    one searchsorted for all."""
    if table is None:
        table = TokenTable(docs)
    idx = list(range(len(table.docs)) if idx is None else idx)
    got = _entity_arrays(table, idx)
    if got is None:
        return [entity_token_spans(table.docs[i]) for i in idx]
    ga, gb, t, qd = got
    return _split_lists(table, idx, ga, gb, t, qd)


def _split_lists(table, idx, ga, gb, t, qd):
    o = table.off[qd]
    tups = list(zip((ga - o).tolist(), (gb - o).tolist(), t.tolist()))
    pos = np.searchsorted(qd, np.asarray(idx, dtype=np.int64), side="left").tolist()
    pos_end = np.searchsorted(qd, np.asarray(idx, dtype=np.int64), side="right").tolist()
    return [tups[x:y] for x, y in zip(pos, pos_end)]


def _unit_entities(table: TokenTable, used: np.ndarray, ent_cache: dict | None):
    """Global (start, end, type) arrays of the entity lists build_example would use for the
    documents ``used`` (indices in order of first use; ent_cache filled as it would be), or None
    when one list is not sorted by start (the caller raises, naming the document)."""
    if ent_cache is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object)
    docs = table.docs
    memo = table.ent_memo  # doc index -> (the list in ent_cache, its global arrays or None)
    todo: dict[str, int] = {}
    for i in used.tolist():
        if i in memo:
            continue
        did = docs[i].id
        if did not in ent_cache and did not in todo:
            todo[did] = i
    if todo:
        idx = sorted(todo.values())
        got = _entity_arrays(table, idx)
        if got is None:
            lists = [entity_token_spans(docs[i]) for i in idx]
        else:
            lists = _split_lists(table, idx, *got)
            table.ent_batches.append(got)
        by_doc = dict(zip(idx, lists))
        for did, i in todo.items():  # the order of first use
            ent_cache[did] = by_doc[i]
        if got is not None:
            for i in idx:
                memo[i] = (by_doc[i], len(table.ent_batches) - 1)
    parts_a: list[np.ndarray] = []
    parts_b: list[np.ndarray] = []
    parts_t: list[np.ndarray] = []
    in_batch: dict[int, list[int]] = {}
    la: list[int] = []
    lb: list[int] = []
    lt: list[str] = []
    off = table.off.tolist()
    lens = table.lens.tolist()
    for i in used.tolist():
        lst = ent_cache[docs[i].id]
        m = memo.get(i)
        if m is not None and m[0] is lst:
            in_batch.setdefault(m[1], []).append(i)
            continue
        if not lst:
            continue
        starts = [e[0] for e in lst]
        if starts != sorted(starts):
            return None
        o, n = off[i], lens[i]
        for a, b, typ in lst:
            if 0 <= a < n:  # an entity starting outside the document's tokens is in no range
                la.append(a + o), lb.append(b + o), lt.append(typ)
    for k, docs_k in in_batch.items():
        ga, gb, t, qd = table.ent_batches[k]
        if len(docs_k) < len(qd):
            flag = np.zeros(len(docs), dtype=bool)
            flag[docs_k] = True
            sel = flag[qd]
            ga, gb, t = ga[sel], gb[sel], t[sel]
        parts_a.append(ga), parts_b.append(gb), parts_t.append(t)
    if la:
        parts_a.append(np.array(la, dtype=np.int64)), parts_b.append(np.array(lb, dtype=np.int64))
        parts_t.append(np.array(lt, dtype=object))
    if not parts_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object)
    ea, eb, et = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_t)
    if len(parts_a) > 1:
        order = np.argsort(ea, kind="stable")  # documents occupy disjoint positions
        ea, eb, et = ea[order], eb[order], et[order]
    if len(ea) > 1 and not bool(np.all(ea[1:] >= ea[:-1])):
        return None  # a list not sorted by start
    return ea, eb, et


def assemble(table: TokenTable, row_a: np.ndarray, row_b: np.ndarray, row_seg: np.ndarray, seg_doc: np.ndarray,
             seg_ex: np.ndarray, seg_k: np.ndarray, n_ex: int, *, cls_id: int, sep_id: int,
             ent_cache: dict | None = None):
    """The arrays of ``n_ex`` examples at once, as :func:`build_example` builds each.

    Rows are token ranges ``[row_a, row_b)`` in global positions of ``table`` (each inside its
    segment's document ``seg_doc``), in example order; ``row_seg`` is each row's segment, ``seg_ex``
    each segment's example and ``seg_k`` its index in the example (ordered: segment s of example e precedes
    s + 1).  Returns ``(ids, token_types, word_ids, ex_start, ex_len, entities)`` where example e
    is ``[ex_start[e], ex_start[e] + ex_len[e])`` of the three arrays and ``entities[e]`` its list.
    Raises ValueError when a row leaves its document or an entity list is not sorted (the caller
    then builds one by one)."""
    row_a = np.asarray(row_a, dtype=np.int64)
    row_b = np.asarray(row_b, dtype=np.int64)
    row_seg = np.asarray(row_seg, dtype=np.int64)
    seg_doc = np.asarray(seg_doc, dtype=np.int64)
    seg_ex = np.asarray(seg_ex, dtype=np.int64)
    seg_k = np.asarray(seg_k, dtype=np.int64)
    n_seg = len(seg_ex)
    L = row_b - row_a
    row_doc = seg_doc[row_seg]
    if len(L) and (int(L.min()) < 0 or bool(np.any(row_a < table.off[row_doc]))
                   or bool(np.any(row_b > table.off[row_doc + 1]))):
        raise ValueError("a range outside its document")
    if n_seg and int(seg_k.max()) > 127:
        raise ValueError("more segments than token types")
    seg_len = np.bincount(row_seg, weights=L, minlength=n_seg).astype(np.int64) if len(L) else np.zeros(n_seg, np.int64)
    seg_tok0 = _excl_cumsum(seg_len)
    seg_out0 = _excl_cumsum(seg_len + 1) + seg_ex + 1  # position of the segment's first token
    ex_len = np.bincount(seg_ex, weights=seg_len + 1, minlength=n_ex).astype(np.int64) + 1
    ex_start = _excl_cumsum(ex_len)
    total = int(ex_len.sum())
    ex_tok0 = _excl_cumsum(np.bincount(seg_ex, weights=seg_len, minlength=n_ex).astype(np.int64))
    ids = np.empty(total, dtype=np.int32)
    tt = np.zeros(total, dtype=np.int8)
    wid = np.full(total, -1, dtype=np.int32)
    row_tok0 = _excl_cumsum(L)
    row_out0 = seg_out0[row_seg] + (row_tok0 - seg_tok0[row_seg])
    n_tok = int(L.sum())
    sep_pos = seg_out0 + seg_len
    if n_tok:
        ar = np.arange(n_tok, dtype=np.int64)
        src = ar + np.repeat(row_a - row_tok0, L)
        dst = ar + np.repeat(row_out0 - row_tok0, L)
        ids[dst] = table.ids[src]
        if n_seg and int(seg_k.max()) > 0:
            tt[dst] = np.repeat(seg_k[row_seg], L)
        w = table.word[src]
        change = np.empty(n_tok, dtype=bool)
        change[0] = True
        np.not_equal(w[1:], w[:-1], out=change[1:])
        change[seg_tok0[seg_len > 0]] = True  # a word starts after every special token
        c = np.cumsum(change)
        cp = np.concatenate([[0], c])
        base = cp[ex_tok0][seg_ex] + 1  # per segment: words of its example before it, plus one
        wid[dst] = c - np.repeat(base[row_seg], L)
    ids[ex_start] = cls_id
    ids[sep_pos] = sep_id
    if n_seg:
        tt[sep_pos] = seg_k
    ents: list[list[tuple[int, int, str]]] = [[] for _ in range(n_ex)]
    if ent_cache is not None and n_seg:
        # the documents in order of first use: build_example fills ent_cache in that order
        used = seg_doc[np.sort(np.unique(seg_doc, return_index=True)[1])]
        got = _unit_entities(table, used, ent_cache)
        if got is None:
            raise ValueError("entities not sorted by start")
        ea, eb, et = got
        if len(ea):
            lo = np.searchsorted(ea, row_a, side="left")
            cnt = np.searchsorted(ea, row_b, side="left") - lo
            n_c = int(cnt.sum())
            if n_c:
                c_row = np.repeat(np.arange(len(L)), cnt)
                cand = np.arange(n_c, dtype=np.int64) + np.repeat(lo - _excl_cumsum(cnt), cnt)
                keep = eb[cand] <= row_b[c_row]
                cand, c_row = cand[keep], c_row[keep]
                c_ex = seg_ex[row_seg[c_row]]
                pa = ea[cand] - row_a[c_row] + row_out0[c_row] - ex_start[c_ex]
                pb = pa + (eb[cand] - ea[cand])
                tups = list(zip(pa.tolist(), pb.tolist(), et[cand].tolist()))
                bounds = np.searchsorted(c_ex, np.arange(n_ex + 1), side="left").tolist()
                ents = [tups[x:y] for x, y in zip(bounds[:-1], bounds[1:])]
    return ids, tt, wid, ex_start, ex_len, ents


def build_examples(items: Sequence[tuple], *, cls_id: int, sep_id: int,
                   ent_cache: dict[str, list[tuple[int, int, str]]] | None = None) -> list[Example]:
    """``[build_example(segments, task=task, example_id=example_id, doc_id=doc_id, label=label, ...)
    for segments, task, example_id, doc_id, label in items]``, assembled at once."""
    items = list(items)
    if not items:
        return []
    doc_index: dict[int, int] = {}
    docs: list[Document] = []
    ra: list[int] = []
    rb: list[int] = []
    rdoc: list[int] = []
    rseg: list[int] = []
    seg_doc: list[int] = []
    seg_ex: list[int] = []
    seg_k: list[int] = []
    s = 0
    for e, (segments, *_rest) in enumerate(items):
        for k, (doc, ranges) in enumerate(segments):
            i = doc_index.get(id(doc))
            if i is None:
                i = doc_index[id(doc)] = len(docs)
                docs.append(doc)
            for a, b in ranges:
                if b < a or a < 0:
                    raise ValueError("an empty or reversed range")
                ra.append(a), rb.append(b), rdoc.append(i), rseg.append(s)
            seg_doc.append(i), seg_ex.append(e), seg_k.append(k)
            s += 1
    table = TokenTable(docs)
    off = table.off[np.array(rdoc, dtype=np.int64)] if rdoc else np.zeros(0, np.int64)
    ra_a = np.array(ra, dtype=np.int64) + off
    rb_a = np.array(rb, dtype=np.int64) + off
    ids, tt, wid, start, length, ents = assemble(table, ra_a, rb_a, np.array(rseg, dtype=np.int64),
                                                 np.array(seg_doc, dtype=np.int64),
                                                 np.array(seg_ex, dtype=np.int64),
                                                 np.array(seg_k, dtype=np.int64), len(items),
                                                 cls_id=cls_id, sep_id=sep_id, ent_cache=ent_cache)
    out = []
    for e, (segments, task, example_id, doc_id, label) in enumerate(items):
        x = int(start[e])
        y = x + int(length[e])
        out.append(Example(doc_id=doc_id or segments[0][0].id, example_id=example_id, task=task,
                           input_ids=ids[x:y], token_type_ids=tt[x:y], word_ids=wid[x:y], label=label,
                           entities=ents[e]))
    return out


def interval_rows(ranges: UnitRanges, seg_r0: Sequence[int], seg_r1: Sequence[int]):
    """Rows for segments made of consecutive ranges ``[seg_r0[s], seg_r1[s])`` of ``ranges``:
    ``(row_a, row_b, row_seg)``."""
    r0 = np.asarray(seg_r0, dtype=np.int64)
    n = np.asarray(seg_r1, dtype=np.int64) - r0
    total = int(n.sum())
    idx = np.arange(total, dtype=np.int64) + np.repeat(r0 - _excl_cumsum(n), n)
    return ranges.a[idx], ranges.b[idx], np.repeat(np.arange(len(r0), dtype=np.int64), n)


def examples_from_arrays(table: TokenTable, rows, seg_doc, seg_ex, seg_k, meta: Sequence[tuple], *, cls_id: int,
                         sep_id: int, ent_cache: dict | None) -> list[Example]:
    """:func:`assemble` then one :class:`Example` per ``(task, example_id, doc_id, label)`` of
    ``meta`` (arrays are slices of the batch arrays)."""
    ids, tt, wid, start, length, ents = assemble(table, *rows, seg_doc, seg_ex, seg_k, len(meta), cls_id=cls_id,
                                                 sep_id=sep_id, ent_cache=ent_cache)
    ends = (start + length).tolist()
    out = []
    for e, ((task, example_id, doc_id, label), x, y) in enumerate(zip(meta, start.tolist(), ends)):
        out.append(Example(doc_id=doc_id, example_id=example_id, task=task, input_ids=ids[x:y],
                           token_type_ids=tt[x:y], word_ids=wid[x:y], label=label, entities=ents[e]))
    return out

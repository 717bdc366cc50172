"""Packing documents into examples: token ranges, BERT-style accumulation, example assembly.

Sentences are the packing unit.  A sentence longer than the budget is cut at word
boundaries, never inside a word (a single word longer than the budget, which needs a run of
hundreds of word pieces, is cut and counted as ``long_word_split``).  Sentences of one document
accumulate until the example's target length is reached; with probability
``short_seq_prob`` the target is drawn uniformly from [2, max] as BERT does, so that the model
also sees short inputs.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import Sequence

import numpy as np

from zhmask.record import Document, Example


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
                rng: np.random.Generator) -> list[list[tuple[int, int]]]:
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
                  task: str, example_id: str, doc_id: str | None = None, label: int = -1,
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

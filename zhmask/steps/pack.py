"""Packing documents into examples: token ranges, BERT-style accumulation, example assembly.

Sentences are the packing unit.  A sentence longer than the budget is cut at word
boundaries, never inside a word (a single word longer than the budget, which needs a run of
hundreds of word pieces, is cut and counted as ``long_word_split``).  Sentences of one document
accumulate until the example's target length is reached; with probability
``short_seq_prob`` the target is drawn uniformly from [2, max] as BERT does, so that the model
also sees short inputs.
"""
from __future__ import annotations

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
    out = []
    for sp in doc.entities:
        a = int(np.searchsorted(toks.starts, sp.start, side="left"))
        b = int(np.searchsorted(toks.starts, sp.end, side="left"))
        if b > a:
            out.append((a, b, sp.type))
    return out


def build_example(segments: Sequence[tuple[Document, list[tuple[int, int]]]], *, cls_id: int, sep_id: int,
                  task: str, example_id: str, doc_id: str | None = None, label: int = -1,
                  ent_cache: dict[str, list[tuple[int, int, str]]] | None = None) -> Example:
    """[CLS] seg0 [SEP] (seg1 [SEP] ...): each segment is a list of token ranges of one document.

    ``word_ids`` are renumbered from 0 over the example; entity spans falling wholly inside one
    contiguous range are carried over to example positions.
    """
    ids_parts = [np.array([cls_id], dtype=np.int32)]
    tt_parts = [np.zeros(1, dtype=np.int8)]
    key_parts = [np.array([-1], dtype=np.int64)]
    entities: list[tuple[int, int, str]] = []
    pos = 1
    for seg_i, (doc, ranges) in enumerate(segments):
        toks = doc.tokens
        assert toks is not None
        ents = None
        if ent_cache is not None:
            ents = ent_cache.get(doc.id)
            if ents is None:
                ents = ent_cache[doc.id] = entity_token_spans(doc)
        for a, b in ranges:
            ids_parts.append(toks.ids[a:b])
            tt_parts.append(np.full(b - a, seg_i, dtype=np.int8))
            key_parts.append(toks.word[a:b].astype(np.int64) + (seg_i + 1) * (1 << 32))
            if ents:
                for ea, eb, et in ents:
                    if ea >= a and eb <= b:
                        entities.append((pos + ea - a, pos + eb - a, et))
            pos += b - a
        ids_parts.append(np.array([sep_id], dtype=np.int32))
        tt_parts.append(np.full(1, seg_i, dtype=np.int8))
        key_parts.append(np.array([-1], dtype=np.int64))
        pos += 1
    ids = np.concatenate(ids_parts).astype(np.int32)
    keys = np.concatenate(key_parts)
    special = keys < 0
    change = np.ones(len(keys), dtype=bool)
    change[1:] = keys[1:] != keys[:-1]
    change &= ~special
    wid = (np.cumsum(change) - 1).astype(np.int32)
    wid[special] = -1
    return Example(
        doc_id=doc_id or segments[0][0].id,
        example_id=example_id,
        task=task,
        input_ids=ids,
        token_type_ids=np.concatenate(tt_parts),
        word_ids=wid,
        label=label,
        entities=entities,
    )

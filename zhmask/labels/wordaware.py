"""Shared by the word-aware tasks (``token_document_relation``, ``capitalization``).

Examples are single segments ``[CLS] text [SEP]`` packed from whole sentences as ``mlm`` packs
them; ``token_labels`` carries one label per token: every token of a labelled word gets the
word's label, every other token (special tokens, unlabelled words) -100; the sentence label is -100 (none).
The per-word class counts go into the manifest's ``events`` as ``<task>_words_<class>``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from zhmask.labels.pairs import Segment, check_sources, ints, segments_example, sep_positions
from zhmask.record import NO_LABEL, SENTENCE_LABEL, Document, Example
from zhmask.steps.pack import pack_ranges, sentence_token_ranges


def doc_chunks(doc: Document, ctx, task: str) -> list[list[tuple[int, int]]]:
    max_tokens = ctx.config.max_seq_length - 2
    ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
    return pack_ranges(ranges, max_tokens, ctx.config.short_seq_prob, ctx.rng(doc.id, f"{task}_pack"))


def labelled_example(doc: Document, chunk: list[tuple[int, int]], word_label: Callable[[int], int], ctx, *,
                     task: str, example_id: str) -> Example | None:
    """The example of ``chunk`` with ``token_labels`` from ``word_label(document word index)``
    (-100: none); None when no token is labelled."""
    ex = segments_example([Segment(doc, chunk)], ctx, task=task, example_id=example_id, label=NO_LABEL, doc_id=doc.id)
    word = np.concatenate([doc.tokens.word[a:b] for a, b in chunk])
    cache: dict[int, int] = {}
    labs = np.full(len(ex.input_ids), -100, dtype=np.int32)
    vals = np.array([cache.setdefault(w, word_label(w)) for w in word.tolist()], dtype=np.int32)
    labs[1:1 + len(vals)] = vals
    if not (labs != -100).any():
        return None
    for w, v in cache.items():
        if v != -100:
            ctx.events[f"{task}_words_{v}"] += 1
    ex.extra["token_labels"] = labs
    return ex


def labelled_examples(doc: Document, chunks: list[list[tuple[int, int]]], word_label: Callable[[int], int], ctx,
                      *, task: str, skip_event: str) -> Iterator[Example]:
    """:func:`labelled_example` of every chunk, numbered ``<doc>#<task><n>``; a chunk without a
    labelled token is skipped and counted as ``skip_event``."""
    n = 0
    for ch in chunks:
        ex = labelled_example(doc, ch, word_label, ctx, task=task, example_id=f"{doc.id}#{task}{n}")
        if ex is None:
            ctx.events[skip_event] += 1
            continue
        n += 1
        yield ex


def check_single(row: dict[str, Any], ctx: dict[str, Any], values: set[int]) -> list[str]:
    """``[CLS] text [SEP]``, no sentence label (-100), token_labels in ``values`` or -100, one label per word."""
    bad: list[str] = []
    if row.get(SENTENCE_LABEL) != NO_LABEL:
        bad.append(f"{SENTENCE_LABEL} {row.get(SENTENCE_LABEL)!r} on a token-level task (expected {NO_LABEL})")
    ids, tt, wid, tl = (ints(row.get(k)) for k in ("input_ids", "token_type_ids", "word_ids", "token_labels"))
    seps = sep_positions(row, ctx)
    if seps != [len(ids) - 1] or any(tt):
        bad.append("not [CLS] text [SEP] with token types 0")
    if len(tl) != len(ids):
        return bad + ["token_labels missing or not one per token"]
    if any(v != -100 and v not in values for v in tl):
        bad.append(f"token_labels outside {sorted(values)} and -100")
    if any(v != -100 and w < 0 for v, w in zip(tl, wid)):
        bad.append("a token label on a special token")
    if all(v == -100 for v in tl):
        bad.append("no token labelled")
    if any(w == w2 and w >= 0 and v != v2 for w, w2, v, v2 in zip(wid, wid[1:], tl, tl[1:])):
        bad.append("tokens of one word carry different labels")
    return bad + check_sources(row, 1)


def iter_chunks(docs: list[Document], ctx, task: str) -> Iterator[tuple[Document, list[list[tuple[int, int]]]]]:
    for doc in docs:
        yield doc, doc_chunks(doc, ctx, task)

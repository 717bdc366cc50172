"""Per-document reference implementations that the package's unit-level code is tested against.

The package runs every stage over a whole work unit at once (a single document is a unit of
one); these functions do the same work one document at a time, the plain way, and exist only
as oracles for tests: the package never calls them.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from zhmask.record import Document, Words
from zhmask.steps.read import RawDoc
from zhmask.steps.sentences import _END
from zhmask.steps.tokenize import _ALIGN_WORTH, run_regex


def reference_document(pipe, raw: RawDoc, events: Counter | None = None) -> tuple[Document | None, str | None]:
    """What ``pipe.document(raw, events)`` gives: normalise, then sentences, words (cut at
    sentence ends, merged for the tokenizer), entities and tokens of the text alone."""
    doc, reason = pipe._start(raw)
    if doc is None:
        return None, reason
    text = doc.text
    doc.sentences = split_sentences(text)
    words = pipe.segmenter.segment(text)
    words, cuts = split_at_sentences(words, doc.sentences)
    words, merges = align(pipe.tok, text, words)
    doc.words = words
    doc.entities = pipe.entities.detect(text, words)
    doc.tokens = pipe.tok.tokenize(text, words)
    if events is not None:
        if cuts:
            events["word_cut_at_sentence_end"] += cuts
        if merges:
            events["words_merged_for_tokenizer"] += merges
    if len(doc.tokens) == 0:
        return None, "no_tokens"
    return doc, None


def reference_documents(pipe, raws: list[RawDoc]):
    """``pipe.documents_or_crash(raws)``, document by document: (documents, events, [UNK] flags)."""
    events: Counter = Counter()
    out = [reference_document(pipe, raw, events) for raw in raws]
    return out, events, [None] * len(out)


def split_sentences(text: str) -> np.ndarray:
    """(n, 2) int32 array of [start, end) spans; empty text gives shape (0, 2)."""
    if not text:
        return np.zeros((0, 2), dtype=np.int32)
    ends = [m.end() for m in _END.finditer(text)]
    bounds = [0]
    for e in ends:
        if e > bounds[-1] and e < len(text):
            bounds.append(e)
    bounds.append(len(text))
    spans = np.array(list(zip(bounds[:-1], bounds[1:])), dtype=np.int32)
    return spans


def sentence_texts(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text).tolist()]


def split_at_sentences(words: Words, sentences: np.ndarray) -> tuple[Words, int]:
    """Cut any word that crosses a sentence boundary; returns (words, number of cuts)."""
    if len(sentences) <= 1 or len(words) == 0:
        return words, 0
    bounds = sentences[1:, 0]
    # a boundary b is crossed by word i when start_i < b < end_i
    idx = np.searchsorted(words.starts, bounds, side="left")  # first word starting at/after b
    crossed = [(int(b), int(i) - 1) for b, i in zip(bounds, idx) if i > 0 and words.ends[i - 1] > b]
    if not crossed:
        return words, 0
    starts = words.starts.tolist()
    ends = words.ends.tolist()
    pos = list(words.pos)
    for b, wi in reversed(crossed):
        s, e, t = starts[wi], ends[wi], pos[wi]
        starts[wi:wi + 1] = [s, b]
        ends[wi:wi + 1] = [b, e]
        pos[wi:wi + 1] = [t, t]
    return Words(np.array(starts, dtype=np.int32), np.array(ends, dtype=np.int32), pos), len(crossed)


def align(tok, text: str, words: Words) -> tuple[Words, int]:
    """``WordTokenizer.align_joined`` of one text: merge words whose boundaries fall inside one
    pre-token run; returns (words, merges)."""
    if len(words) <= 1 or text.isascii() is False and not _ALIGN_WORTH.search(text):
        return words, 0
    rr = tok._run_re or run_regex()
    starts = words.starts
    merges: list[tuple[int, int]] = []
    for m in rr.finditer(text):
        a, b = m.span()
        if b - a < 2:
            continue
        i = int(np.searchsorted(starts, a, side="right")) - 1
        j = int(np.searchsorted(starts, b, side="left"))  # words i..j-1 overlap [a, b)
        if j - i > 1 or (i >= 0 and (starts[i] < a and words.ends[i] > a)):
            if j - i > 1:
                merges.append((i, j))
    if not merges:
        return words, 0
    s_l, e_l, p_l = [], [], []
    prev = 0
    st, en, pos = words.starts.tolist(), words.ends.tolist(), words.pos
    for i, j in merges:
        if i < prev:  # overlapping merge ranges (cannot happen for disjoint runs)
            i = prev
        s_l += st[prev:i]
        e_l += en[prev:i]
        p_l += pos[prev:i]
        s_l.append(st[i])
        e_l.append(en[j - 1])
        p_l.append(pos[i])
        prev = j
    s_l += st[prev:]
    e_l += en[prev:]
    p_l += pos[prev:]
    return Words(np.array(s_l, dtype=np.int32), np.array(e_l, dtype=np.int32), p_l), len(merges)

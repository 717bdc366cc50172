"""Per-document reference implementations that the package's unit-level code is tested against.

The package runs every stage over a whole work unit at once (a single document is a unit of
one); these functions do the same work one document at a time, the plain way, and exist only
as oracles for tests: the package never calls them.
"""
from __future__ import annotations

from collections import Counter

from zhmask.record import Document
from zhmask.steps.read import RawDoc
from zhmask.steps.segment import split_at_sentences
from zhmask.steps.sentences import split_sentences


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
    words, merges = pipe.tok.align(text, words)
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

"""``token_document_relation``: ERNIE 2.0's token-document relation task (Sun et al. 2020).

A document is packed into segments (``[CLS] text [SEP]``, whole sentences, as ``mlm``); for
every word of a segment, ``token_labels`` says whether the word also appears in another segment
of the same document (1) or not (0).  Words are compared by their lowercased text;
punctuation-only words are not labelled (-100).  A document that fits in one segment has no
other segment and is skipped (``token_document_relation_single_segment``).  Frequent words
across a document's segments are what ERNIE uses this task for: they tend to be its keywords.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.labels.pairs import is_punct_word
from zhmask.labels.wordaware import check_single, iter_chunks, labelled_examples
from zhmask.record import Document, Example

TASK = "token_document_relation"
CLASSES = {0: "the word appears in no other segment of the document", 1: "it also appears in another segment"}


@register(TASK, columns=("segment_sources", "token_labels"),
          traits=("token_labels",), help="whether a word recurs elsewhere in its document (ERNIE 2.0)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    for doc, chunks in iter_chunks(docs, ctx, TASK):
        if len(chunks) < 2:
            ctx.events["token_document_relation_single_segment"] += 1
            continue
        words = [w.lower() for w in doc.word_texts()]
        word_of = doc.tokens.word
        per_chunk = [{words[w] for a, b in ch for w in set(word_of[a:b].tolist())} for ch in chunks]
        seen = Counter(w for s in per_chunk for w in s)  # number of segments holding each word
        yield from labelled_examples(doc, chunks,
                                     lambda w: -100 if is_punct_word(words[w]) else int(seen[words[w]] > 1),
                                     ctx, task=TASK, skip_event="token_document_relation_no_word")


@register_check(TASK)
def check_token_document_relation(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    return check_single(row, ctx, {0, 1})

"""``sop``: sentence order prediction (ALBERT, Lan et al. 2020; MacBERT).

Chunks of two or more consecutive sentences of one document, cut at a random sentence boundary
into A and B as for ``nsp``.  Label 0: ``[CLS] A [SEP] B [SEP]`` (document order); label 1:
``[CLS] B [SEP] A [SEP]`` (swapped).  Classes balanced per document.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.labels.pairs import (balanced_classes, batched, check_pair, pair_rows,
                                 span_sources, unit_two_part_chunks)
from zhmask.record import SENTENCE_LABEL, Document, Example

TASK = "sop"
CLASSES = {0: "A then B, in document order", 1: "swapped: B then A"}


@register(TASK, columns=("segment_sources",),
          traits=("pairs", "sentence_label"), help="sentence order prediction (ALBERT)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    return iter(batched(lambda part, events: unit_examples(part, ctx, events), docs, ctx, TASK))


def unit_examples(docs: list[Document], ctx, events) -> list[Example]:
    """All of the unit's ``sop`` examples: chunks, splits and labels drawn per document as in
    the per-document oracle (tests/oracle.py), the examples assembled at once."""
    from zhmask.steps.pack import examples_from_arrays

    ur, per_doc = unit_two_part_chunks(docs, ctx, TASK, events)
    firsts: list[tuple[int, int]] = []
    seconds: list[tuple[int, int]] = []
    seg_doc: list[int] = []
    meta: list[tuple] = []
    for d, (doc, chunks) in enumerate(zip(docs, per_doc)):
        if not chunks:
            continue  # balanced_classes(0, ...) draws nothing
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "sop_label"))
        did = doc.id
        for n, ((r0, rm, r1), label) in enumerate(zip(chunks, labels)):
            if label == 1:
                firsts.append((rm, r1)), seconds.append((r0, rm))
            else:
                firsts.append((r0, rm)), seconds.append((rm, r1))
            meta.append((TASK, f"{did}#{TASK}{n}", did, label))
        seg_doc += [d] * (2 * len(chunks))
    rows, r0, r1, seg_ex, seg_k = pair_rows(ur, firsts, seconds)
    # A and B come from one chunk of at most max_seq_length - 3 tokens: never truncated
    n_tok = ur.b[r1 - 1] - ur.a[r0] if len(r0) else np.zeros(0, np.int64)
    if len(n_tok) and int((n_tok[0::2] + n_tok[1::2]).max()) > ctx.config.max_seq_length - 3:
        raise ValueError("a pair longer than the budget")
    sd = np.array(seg_doc, dtype=np.int64)
    exs = examples_from_arrays(ur.table, rows, sd, seg_ex, seg_k, meta, cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id,
                               ent_cache=ctx.ent_cache)
    src = span_sources(ur, r0, r1, sd)
    for e, ex in enumerate(exs):
        ex.extra["segment_sources"] = src[2 * e:2 * e + 2]
    return exs


@register_check(TASK)
def check_sop(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_pair(row, ctx, 2)
    src = row.get("segment_sources") or []
    if not bad and len(src) == 2:
        if src[0]["doc_id"] != src[1]["doc_id"] or src[0]["doc_id"] != row["doc_id"]:
            bad.append("the two segments do not come from the row's document")
        elif (row[SENTENCE_LABEL] == 0) != (src[0]["end"] <= src[1]["start"]):
            bad.append(f"label {row[SENTENCE_LABEL]} disagrees with the segments' order in the document")
    return bad

"""``sop``: sentence order prediction (ALBERT, Lan et al. 2020; MacBERT).

Chunks of two or more consecutive sentences of one document, cut at a random sentence boundary
into A and B as for ``nsp``.  Label 0: ``[CLS] A [SEP] B [SEP]`` (document order); label 1:
``[CLS] B [SEP] A [SEP]`` (swapped).  Classes balanced per document.
"""
from __future__ import annotations

from typing import Any, Iterator

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.labels.pairs import Segment, balanced_classes, check_pair, pair_example, two_part_chunks
from zhmask.record import Document, Example

TASK = "sop"
CLASSES = {0: "A then B, in document order", 1: "swapped: B then A"}


@register(TASK)
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    for doc in docs:
        chunks = two_part_chunks(doc, ctx, TASK)
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "sop_label"))
        for n, ((ra, rb), label) in enumerate(zip(chunks, labels)):
            a, b = Segment(doc, ra), Segment(doc, rb)
            if label == 1:
                a, b = b, a
            yield pair_example(a, b, ctx, task=TASK, example_id=f"{doc.id}#{TASK}{n}", label=label, doc_id=doc.id)


@register_check(TASK)
def check_sop(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_pair(row, ctx, 2)
    src = row.get("segment_sources") or []
    if not bad and len(src) == 2:
        if src[0]["doc_id"] != src[1]["doc_id"] or src[0]["doc_id"] != row["doc_id"]:
            bad.append("the two segments do not come from the row's document")
        elif (row["label"] == 0) != (src[0]["end"] <= src[1]["start"]):
            bad.append(f"label {row['label']} disagrees with the segments' order in the document")
    return bad

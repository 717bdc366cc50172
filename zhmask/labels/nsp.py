"""``nsp``: next sentence prediction (BERT, Devlin et al. 2019).

Sentences of a document are packed as ``mlm`` packs them and each chunk of two or more sentences
is cut at a random sentence boundary into A and B.  Label 0: B is the text that follows A in the
document.  Label 1: B is replaced by a run of sentences (about as long as the B it replaces) from
another document of the same work unit, one whose text differs from A's document.  Classes are
drawn before the example is built, balanced per document (:func:`zhmask.labels.pairs.balanced_classes`).
"""
from __future__ import annotations

from typing import Any, Iterator

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.labels.pairs import Segment, UnitDocs, balanced_classes, check_pair, pair_example, two_part_chunks
from zhmask.record import Document, Example

TASK = "nsp"
CLASSES = {0: "B follows A in the document", 1: "B comes from another document"}


@register(TASK)
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    unit = UnitDocs(docs, ctx.config.max_seq_length - 3)
    for i, doc in enumerate(docs):
        chunks = two_part_chunks(doc, ctx, TASK)
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "nsp_label"))
        rng = ctx.rng(doc.id, "nsp_other")
        n = 0
        for (ra, rb), label in zip(chunks, labels):
            a, b = Segment(doc, ra), Segment(doc, rb)
            if label == 1:
                j = unit.pick_other(i, rng)
                if j is None:
                    ctx.events["nsp_no_other_document"] += 1
                    continue
                b = Segment(docs[j], unit.random_run(j, len(b), rng))
            yield pair_example(a, b, ctx, task=TASK, example_id=f"{doc.id}#{TASK}{n}", label=label, doc_id=doc.id)
            n += 1


@register_check(TASK)
def check_nsp(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_pair(row, ctx, 2)
    src = row.get("segment_sources") or []
    if not bad and len(src) == 2:
        same = src[0]["doc_id"] == src[1]["doc_id"]
        if row["label"] == 0 and (not same or src[1]["start"] < src[0]["end"]):
            bad.append("label 0 but B does not follow A in one document")
        if row["label"] == 1 and same:
            bad.append("label 1 but B comes from A's document")
    return bad

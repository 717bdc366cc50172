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
from zhmask.labels.pairs import (PairExamples, Segment, UnitDocs, balanced_classes, batched, check_pair,
                                 unit_two_part_chunks)
from zhmask.record import SENTENCE_LABEL, Document, Example

TASK = "nsp"
CLASSES = {0: "B follows A in the document", 1: "B comes from another document"}


@register(TASK, columns=("segment_sources",),
          traits=("pairs", "sentence_label", "other_documents"), help="next sentence prediction (BERT)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    return iter(batched(lambda part, events: unit_examples(part, ctx, events), docs, ctx, TASK))


def unit_examples(docs: list[Document], ctx, events) -> list[Example]:
    """All of the unit's ``nsp`` examples: chunks, splits, labels and other documents drawn per
    document as in the per-document oracle (tests/oracle.py), the examples assembled at once."""
    max_tokens = ctx.config.max_seq_length - 3
    unit = UnitDocs(docs, max_tokens, ctx.ent_cache)
    ur, per_doc = unit_two_part_chunks(docs, ctx, TASK, events)
    a_l, b_l, off = ur.a.tolist(), ur.b.tolist(), ur.table.off.tolist()
    pairs = PairExamples(ctx, TASK, events)
    for i, (doc, chunks) in enumerate(zip(docs, per_doc)):
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "nsp_label"))
        rng = None
        n = 0
        o = off[i]
        for (r0, rm, r1), label in zip(chunks, labels):
            a = Segment(doc, [(x - o, y - o) for x, y in zip(a_l[r0:rm], b_l[r0:rm])])
            b = Segment(doc, [(x - o, y - o) for x, y in zip(a_l[rm:r1], b_l[rm:r1])])
            if label == 1:
                if rng is None:
                    rng = ctx.rng(doc.id, "nsp_other")
                j = unit.pick_other(i, rng)
                if j is None:
                    events["nsp_no_other_document"] += 1
                    continue
                b = Segment(docs[j], unit.random_run(j, len(b), rng))
            pairs.add(a, b, example_id=f"{doc.id}#{TASK}{n}", label=label, doc_id=doc.id)
            n += 1
    return pairs.build()


@register_check(TASK)
def check_nsp(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_pair(row, ctx, 2)
    src = row.get("segment_sources") or []
    if not bad and len(src) == 2:
        same = src[0]["doc_id"] == src[1]["doc_id"]
        if row[SENTENCE_LABEL] == 0 and (not same or src[1]["start"] < src[0]["end"]):
            bad.append("label 0 but B does not follow A in one document")
        if row[SENTENCE_LABEL] == 1 and same:
            bad.append("label 1 but B comes from A's document")
    return bad

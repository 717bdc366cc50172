"""``sentence_distance``: ERNIE 2.0's sentence distance task (Sun et al. 2020), 3 classes.

``[CLS] A [SEP] B [SEP]`` with A a sentence of a document and B:

* 0: the sentence right after A in the same document (adjacent);
* 1: another sentence of the same document, at least one sentence away from A (either side);
* 2: a sentence of another document of the work unit (a different text, also after
  de-duplication).

Anchors are every other sentence of a document (0, 2, 4, ...; one example per two sentences),
the classes balanced per document.  A document needs three sentences to offer classes 0 and 1;
shorter ones are counted (``sentence_distance_short_document``) and skipped.  "Sentences" are
those of the sentence splitter, a sentence longer than ``max_seq_length - 3`` tokens cut at
word starts into pieces that count as sentences.
"""
from __future__ import annotations

from typing import Any, Iterator

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.labels.pairs import PairExamples, Segment, UnitDocs, balanced_classes, check_pair
from zhmask.record import SENTENCE_LABEL, Document, Example

TASK = "sentence_distance"
CLASSES = {0: "adjacent sentences of one document", 1: "same document, not adjacent", 2: "different documents"}


@register(TASK, columns=("segment_sources",),
          traits=("pairs", "sentence_label", "other_documents"), help="adjacent, same document or another document (ERNIE 2.0)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    unit = UnitDocs(docs, ctx.config.max_seq_length - 3, ctx.ent_cache)
    pairs = PairExamples(ctx, TASK)
    for i, doc in enumerate(docs):
        r = unit.ranges(i)
        if len(r) < 3:
            ctx.events["sentence_distance_short_document"] += 1
            continue
        anchors = list(range(0, len(r) - 1, 2))
        labels = balanced_classes(len(anchors), 3, ctx.rng(doc.id, "sentence_distance_label"))
        rng = ctx.rng(doc.id, "sentence_distance_pick")
        n = 0
        for a, label in zip(anchors, labels):
            if label == 0:
                b = Segment(doc, [r[a + 1]])
            elif label == 1:
                far = [j for j in range(len(r)) if abs(j - a) >= 2]
                b = Segment(doc, [r[far[int(rng.integers(len(far)))]]])
            else:
                j = unit.pick_other(i, rng)
                if j is None:
                    ctx.events["sentence_distance_no_other_document"] += 1
                    continue
                rj = unit.ranges(j)
                b = Segment(docs[j], [rj[int(rng.integers(len(rj)))]])
            pairs.add(Segment(doc, [r[a]]), b, example_id=f"{doc.id}#{TASK}{n}", label=label, doc_id=doc.id)
            n += 1
    yield from pairs.build()


@register_check(TASK)
def check_sentence_distance(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_pair(row, ctx, 3)
    src = row.get("segment_sources") or []
    if not bad and len(src) == 2:
        same = src[0]["doc_id"] == src[1]["doc_id"] == row["doc_id"]
        if (row[SENTENCE_LABEL] < 2) != same:
            bad.append(f"label {row[SENTENCE_LABEL]} but the segments come from {'one' if same else 'two'} document(s)")
        elif row[SENTENCE_LABEL] == 0 and src[1]["start"] < src[0]["end"]:
            bad.append("label 0 but B does not follow A")
    return bad

"""``mlm``: single-segment examples packed from whole sentences of one document (BERT/RoBERTa)."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from zhmask.labels import register
from zhmask.record import NO_LABEL, Document, Example
from zhmask.steps.pack import (build_example, examples_from_arrays, interval_rows, pack_ends,
                               pack_ranges, sentence_token_ranges, unit_table)


@register("mlm")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    from zhmask.labels.pairs import batched

    return batched(lambda events: unit_examples(docs, ctx, events), lambda: generate_each(docs, ctx), ctx)


def generate_each(docs: list[Document], ctx) -> Iterator[Example]:
    """The examples one by one (the reference for :func:`unit_examples`)."""
    max_tokens = ctx.config.max_seq_length - 2
    for doc in docs:
        ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
        chunks = pack_ranges(ranges, max_tokens, ctx.config.short_seq_prob, ctx.rng(doc.id, "pack"))
        for i, chunk in enumerate(chunks):
            yield build_example([(doc, chunk)], cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id, task="mlm",
                                example_id=f"{doc.id}#mlm{i}", ent_cache=ctx.ent_cache)


def unit_examples(docs: list[Document], ctx, events) -> list[Example]:
    """All of the unit's ``mlm`` examples, the chunks drawn per document as in
    :func:`generate_each` and the examples assembled at once (events counted into ``events``)."""
    max_tokens = ctx.config.max_seq_length - 2
    ssp = ctx.config.short_seq_prob
    table = unit_table(docs, ctx.ent_cache)
    ur = table.ranges(max_tokens)
    doc_events = ur.events_by_doc() if ur.events else {}
    lengths = (ur.b - ur.a).tolist()
    roff = ur.roff.tolist()
    seg_r0: list[int] = []
    seg_r1: list[int] = []
    seg_doc: list[int] = []
    meta: list[tuple] = []
    for d, doc in enumerate(docs):
        for e in doc_events.get(d, ()):
            events[e] += 1
        lo, hi = roff[d], roff[d + 1]
        ends = pack_ends(lengths[lo:hi], max_tokens, ssp, ctx.rng(doc.id, "pack"))
        prev = lo
        did = doc.id
        for i, end in enumerate(ends):
            seg_r0.append(prev)
            prev = lo + end
            seg_r1.append(prev)
            meta.append(("mlm", f"{did}#mlm{i}", did, NO_LABEL))
        seg_doc += [d] * len(ends)
    n = len(meta)
    return examples_from_arrays(table, interval_rows(ur, seg_r0, seg_r1), seg_doc, np.arange(n), np.zeros(n, np.int64),
                                meta, cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id, ent_cache=ctx.ent_cache)

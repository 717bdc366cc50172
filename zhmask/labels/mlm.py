"""``mlm``: single-segment examples packed from whole sentences of one document (BERT/RoBERTa)."""
from __future__ import annotations

from typing import Iterator

from zhmask.labels import register
from zhmask.record import Document, Example
from zhmask.steps.pack import build_example, pack_ranges, sentence_token_ranges


@register("mlm")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    max_tokens = ctx.config.max_seq_length - 2
    for doc in docs:
        ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
        chunks = pack_ranges(ranges, max_tokens, ctx.config.short_seq_prob, ctx.rng(doc.id, "pack"))
        for i, chunk in enumerate(chunks):
            yield build_example([(doc, chunk)], cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id, task="mlm",
                                example_id=f"{doc.id}#mlm{i}", ent_cache=ctx.ent_cache)

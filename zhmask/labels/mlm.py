"""``mlm``: single-segment examples packed from whole sentences of one document (BERT/RoBERTa).

With ``--packing full`` (:func:`full_examples`) rows are filled across document boundaries
instead, a [SEP] between documents (RoBERTa's FULL-SENTENCES); see docs/pipeline.md.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.record import NO_LABEL, Document, Example
from zhmask.steps.pack import examples_from_arrays, interval_rows, pack_ends, unit_table


# --packing full: a group of consecutive documents closes at the first document end after it has
# filled this many rows; a row never spans two groups, and every row of a group has the group's
# first document as the document part of its example_id (the validation split's unit)
FULL_GROUP_ROWS = 32


@register("mlm", columns=("segment_sources",),
          traits=("full_packing",), help="[CLS] text [SEP] rows for masked language modelling")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    from zhmask.labels.pairs import batched

    if ctx.config.packing == "full":  # one path: rows depend on the whole unit, there is no per-document one
        return iter(full_examples(docs, ctx, ctx.events))
    return iter(batched(lambda part, events: unit_examples(part, ctx, events), docs, ctx, "mlm"))


def _unit_sentences(docs: list[Document], ctx, piece: int | None = None):
    """The unit's token table, its sentence ranges for one-segment rows (UnitRanges; sentences
    longer than ``piece`` tokens, by default ``max_seq_length - 2``, cut at word starts), the
    events of each document, the ranges' lengths and each document's first range (``roff``)."""
    table = unit_table(docs, ctx.ent_cache)
    ur = table.ranges(ctx.config.max_seq_length - 2 if piece is None else piece)
    doc_events = ur.events_by_doc() if ur.events else {}
    return table, ur, doc_events, (ur.b - ur.a).tolist(), ur.roff.tolist()


def unit_examples(docs: list[Document], ctx, events, task: str = "mlm") -> list[Example]:
    """All of the unit's ``mlm`` examples, the chunks drawn per document as in
    the per-document oracle (tests/oracle.py) and the examples assembled at once (events counted into ``events``).
    ``task`` names the rows (task and example ids ``<doc>#<task><i>``; ``plm`` packs its rows so)."""
    max_tokens = ctx.config.max_seq_length - 2
    ssp = ctx.config.short_seq_prob
    table, ur, doc_events, lengths, roff = _unit_sentences(docs, ctx)
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
            meta.append((task, f"{did}#{task}{i}", did, NO_LABEL))
        seg_doc += [d] * len(ends)
    n = len(meta)
    return examples_from_arrays(table, interval_rows(ur, seg_r0, seg_r1), seg_doc, np.arange(n), np.zeros(n, np.int64),
                                meta, cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id, ent_cache=ctx.ent_cache)


def full_examples(docs: list[Document], ctx, events) -> list[Example]:
    """The unit's ``mlm`` rows under ``--packing full`` (:func:`pack_full`)."""
    return pack_full(docs, ctx, events)[0]


def pack_full(docs: list[Document], ctx, events, *, task: str = "mlm", tag: str = "full",
              max_len: int | None = None, short_seq_prob: float | None = None, piece: int | None = None):
    """The unit's rows filled across documents: whole sentences, in document order, fill
    each row up to ``max_seq_length`` across document boundaries, a [SEP] closing every
    document's part (``[CLS] d1 [SEP] d2 [SEP] d3 [SEP]``, token types all 0).

    Documents form groups of consecutive documents (:data:`FULL_GROUP_ROWS`); rows never span
    groups, so a group's last row may be short, and so may the unit's last row.  A row's
    ``doc_id`` is its first document; ``segment_sources`` lists every document it holds (doc id
    and character span); its ``example_id`` is ``<group's first document>#full<i>``, so that the
    validation split (by the document part of example_id) holds out whole groups and no held-out
    document's text reaches a training row.  Target lengths are drawn as for ``--packing
    document`` (``short_seq_prob``), from the generator of the group's first document.

    ``task``, ``tag`` (example ids ``<group>#<tag><i>``), ``max_len`` (the row budget, [CLS]
    included), ``short_seq_prob`` and ``piece`` (sentences cut into pieces of at most this many
    tokens at word starts) default to mlm's; ``clm`` (:mod:`zhmask.labels.clm`) packs with its own.  Returns the examples and, per segment (row part), its first and last range
    ``[r0, r1)``, its document index and its example, and the unit's ranges (UnitRanges)."""
    from zhmask.labels.pairs import span_sources

    max_len = ctx.config.max_seq_length if max_len is None else max_len
    ssp = ctx.config.short_seq_prob if short_seq_prob is None else short_seq_prob
    table, ur, doc_events, lengths, roff = _unit_sentences(docs, ctx, piece)
    seg_r0: list[int] = []
    seg_r1: list[int] = []
    seg_doc: list[int] = []
    seg_ex: list[int] = []
    meta: list[tuple] = []
    state = {"rng": None, "group": None, "rows": 0, "len": 1, "target": max_len, "first": -1}

    def target() -> int:
        rng = state["rng"]
        if ssp > 0 and rng.random() < ssp:
            return int(rng.integers(3, max_len + 1))
        return max_len

    def close_row() -> None:
        if state["len"] > 1:
            gid = state["group"]
            meta.append((task, f"{gid}#{tag}{state['rows']}", docs[state["first"]].id, NO_LABEL))
            state["rows"] += 1
            state["len"], state["first"] = 1, -1
            state["target"] = target()

    for d, doc in enumerate(docs):
        for e in doc_events.get(d, ()):
            events[e] += 1
        lo, hi = roff[d], roff[d + 1]
        if lo == hi:
            continue
        if state["group"] is None:
            state["group"], state["rows"] = doc.id, 0
            state["rng"] = ctx.rng(doc.id, "pack_full")
            state["target"] = target()
        start = lo  # the open segment of this document: ranges [start, r)
        for r in range(lo, hi):
            n = lengths[r] + (1 if r == start else 0)  # a new segment brings its [SEP]
            if state["len"] > 1 and state["len"] + n > max_len:
                if r > start:
                    seg_r0.append(start), seg_r1.append(r), seg_doc.append(d), seg_ex.append(len(meta))
                close_row()
                start = r
                n = lengths[r] + 1
            if state["first"] < 0:
                state["first"] = d
            state["len"] += n
            if state["len"] >= state["target"]:
                seg_r0.append(start), seg_r1.append(r + 1), seg_doc.append(d), seg_ex.append(len(meta))
                close_row()
                start = r + 1
        if hi > start:
            seg_r0.append(start), seg_r1.append(hi), seg_doc.append(d), seg_ex.append(len(meta))
        if state["rows"] >= FULL_GROUP_ROWS:  # the group ends with this document
            close_row()
            state["group"] = None
    close_row()
    n = len(seg_ex)
    sd = np.asarray(seg_doc, dtype=np.int64)
    exs = examples_from_arrays(table, interval_rows(ur, seg_r0, seg_r1), sd, np.asarray(seg_ex, dtype=np.int64),
                               np.zeros(n, np.int64), meta, cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id,
                               ent_cache=ctx.ent_cache)
    src = span_sources(ur, np.asarray(seg_r0, dtype=np.int64), np.asarray(seg_r1, dtype=np.int64), sd)
    bounds = np.searchsorted(np.asarray(seg_ex, dtype=np.int64), np.arange(len(exs) + 1)).tolist()
    for e, ex in enumerate(exs):
        ex.extra["segment_sources"] = src[bounds[e]:bounds[e + 1]]
    return exs, (seg_r0, seg_r1, sd, bounds), ur


@register_check("mlm")
def check_mlm(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    """One segment (``[CLS] text [SEP]``); under ``--packing full`` one segment per document,
    each listed in ``segment_sources`` (the first is the row's ``doc_id``), token types all 0."""
    from zhmask.labels.pairs import check_sources, ints, sep_positions

    seps = sep_positions(row, ctx)
    n = len(row.get("input_ids") or ())
    if not seps or seps[-1] != n - 1 or any(b - a < 2 for a, b in zip([0] + seps, seps)):
        return ["not [CLS] text [SEP] (...) [SEP]: an empty segment or no [SEP] at the end"]
    if any(ints(row.get("token_type_ids"))):
        return ["token_type_ids not all 0"]
    if ((ctx.get("config") or {}).get("packing") or "document") != "full":
        return [] if len(seps) == 1 else [f"{len(seps)} segments in a row of --packing document"]
    bad = check_sources(row, len(seps))
    src = row.get("segment_sources") or []
    if not bad:
        if src[0]["doc_id"] != row["doc_id"]:
            bad.append("doc_id is not the document of the first segment")
        if any(a["doc_id"] == b["doc_id"] for a, b in zip(src, src[1:])):
            bad.append("two consecutive segments of one document")
    return bad

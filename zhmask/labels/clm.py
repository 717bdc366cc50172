"""``clm``: causal language modelling rows (GPT), documents packed end to end; see docs/autoregressive.md.

Whole sentences of consecutive documents fill each row up to ``max_seq_length`` tokens, a [SEP]
closing every document's part (``d1 [SEP] d2 [SEP] d3 ...``), no [CLS] and no masks: the packing
is ``--packing full``'s (:func:`zhmask.labels.mlm.pack_full`, never a short target length), so a
row ends at a sentence boundary and the group rules (held-out split by group) are the same.

Columns: ``labels`` are the input ids (the model shifts them), except -100 at the first token of
every part (it would be predicted from the previous document) and at a [SEP] that closes a part
whose document goes on in the next row (not a document end); ``doc_bounds`` = ``[0, e1, ..., n]``,
part ``k`` being positions ``[doc_bounds[k], doc_bounds[k + 1])`` with its [SEP], so that a trainer
can reset attention (and positions) at every document boundary; ``segment_sources`` lists each
part's document and character span, as under ``--packing full``.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import numpy as np

from zhmask.checks import register_check
from zhmask.labels import check_unmasked, register
from zhmask.record import Document, Example

# rows are filled with pieces of sentences of at most this many tokens, cut at word starts: a row
# falls short of max_seq_length by less than a piece (docs/autoregressive.md gives the fill)
PIECE = 16


def _validate(config) -> None:
    check_unmasked(config, "clm", "predicts every token from the ones before it")


@register("clm", validate=_validate, columns=("segment_sources", "doc_bounds"),
          traits=("unmasked", "full_packing", "other_documents"), help="causal language modelling rows (GPT)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    return iter(clm_examples(docs, ctx, ctx.events))


def clm_examples(docs: list[Document], ctx, events) -> list[Example]:
    """The unit's ``clm`` rows (module docstring)."""
    from zhmask.labels.mlm import pack_full

    # the packer counts a leading [CLS] in its budget: one more, and the [CLS] is taken off below.
    # Sentences are cut into pieces of at most PIECE tokens (at word starts) so that rows fill up:
    # those cuts are no events of clm's (a causal row may end anywhere), a word cut is.
    piece_events: Counter = Counter()
    piece = min(PIECE, ctx.config.max_seq_length - 2)
    exs, (r0, r1, seg_doc, bounds), ur = pack_full(docs, ctx, piece_events, task="clm", tag="clm",
                                                    max_len=ctx.config.max_seq_length + 1, short_seq_prob=0.0,
                                                    piece=piece)
    if piece_events.get("long_word_split"):
        events["long_word_split"] += piece_events["long_word_split"]
    cum = np.zeros(len(ur.a) + 1, dtype=np.int64)
    np.cumsum(ur.b - ur.a, out=cum[1:])
    r0 = np.asarray(r0, dtype=np.int64)
    r1 = np.asarray(r1, dtype=np.int64)
    part_len = cum[r1] - cum[r0] + 1  # the part's tokens and its [SEP]
    ends_doc = r1 == ur.roff[seg_doc + 1]  # the part reaches its document's last range
    for e, ex in enumerate(exs):
        a, b = bounds[e], bounds[e + 1]
        db = np.zeros(b - a + 1, dtype=np.int32)
        np.cumsum(part_len[a:b], out=db[1:])
        ids = ex.input_ids[1:]
        if int(db[-1]) != len(ids):
            raise AssertionError(f"clm row {ex.example_id}: parts of {int(db[-1])} tokens in a row of {len(ids)}")
        labels = ids.astype(np.int32, copy=True)
        labels[db[:-1]] = -100
        cont = ~ends_doc[a:b]
        labels[db[1:][cont] - 1] = -100
        ex.input_ids = ids
        ex.token_type_ids = ex.token_type_ids[1:]
        ex.word_ids = ex.word_ids[1:]
        ex.entities = [(s - 1, t - 1, typ) for s, t, typ in ex.entities]
        ex.extra["labels"] = labels
        ex.extra["doc_bounds"] = db
    return exs


@register_check("clm")
def check_clm(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    """No [CLS] or [MASK]; ``doc_bounds`` cut the row into parts that each end with the only
    [SEP] they hold, one per ``segment_sources`` entry (consecutive parts of different documents,
    the first the row's ``doc_id``); labels are the input ids but -100 at every part's first
    token and, where a part's document continues, at its [SEP]; token types all 0."""
    from zhmask.labels.pairs import check_sources

    def ints(v) -> np.ndarray:
        return np.asarray(v if v is not None else [], dtype=np.int64)

    ids = ints(row.get("input_ids"))
    n = len(ids)
    db = ints(row.get("doc_bounds"))
    if len(db) < 2 or db[0] != 0 or db[-1] != n or (np.diff(db) < 2).any():
        return [f"doc_bounds {db.tolist()[:8]} do not cut the {n} tokens into parts of at least 2"]
    bad: list[str] = []
    if (ids == ctx["cls_id"]).any() or (ids == ctx["mask_id"]).any():
        bad.append("a [CLS] or [MASK] in a clm row")
    seps = np.flatnonzero(ids == ctx["sep_id"])
    if not np.array_equal(seps, db[1:] - 1):
        bad.append("[SEP] tokens are not exactly the last token of every part")
    if ints(row.get("token_type_ids")).any():
        bad.append("token_type_ids not all 0")
    bad += check_sources(row, len(db) - 1)
    src = row.get("segment_sources") or []
    if not bad:
        if src[0]["doc_id"] != row["doc_id"]:
            bad.append("doc_id is not the document of the first part")
        if any(x["doc_id"] == y["doc_id"] for x, y in zip(src, src[1:])):
            bad.append("two consecutive parts of one document")
    labels = ints(row.get("labels"))
    if len(labels) == n:
        want = ids.copy()
        want[db[:-1]] = -100
        differ = (labels != want) & ~((labels == -100) & np.isin(np.arange(n), db[1:] - 1))
        if differ.any():
            bad.append("labels are not the input ids (-100 at part starts, and at a [SEP] of a continuing document)")
    return bad

"""``sentence_reorder``: ERNIE 2.0's sentence reordering task (Sun et al. 2020).

A span of whole sentences of one document is cut at sentence boundaries into ``n`` segments
(``1 <= n <= m``, ``m`` = ``--option reorder_max_segments``, default 3) which are shown in a
shuffled order::

    [CLS] seg_perm[0] [SEP] seg_perm[1] [SEP] ... seg_perm[n-1] [SEP]

The label is the permutation's index among all ``sum_{n=1..m} n!`` orderings (9 classes for
``m = 3``): labels are grouped by ``n`` (``n = 1`` first) and, inside a group, permutations are
in lexicographic order.  ``perm = permutation_of(label, m)`` says which original segment each
shown segment is: shown segment ``i`` is original segment ``perm[i]``; :func:`restore` applies
the inverse.  ``span_bounds`` holds ``[p_0, p_1, ..., p_n]``: shown segment ``i`` occupies
``input_ids[p_i : p_{i+1} - 1]`` and is followed by the ``[SEP]`` at ``p_{i+1} - 1``
(``p_0 = 1``, ``p_n = len(input_ids)``).  ``token_type_ids`` are all 0 (BERT-style models have
two token types; segment boundaries are in ``span_bounds`` and at the ``[SEP]`` tokens).

Spans are packed greedily from consecutive sentences up to ``max_seq_length - 1 - m`` tokens;
the label is drawn uniformly over the classes whose ``n`` does not exceed the number of
sentences in the span (over all classes once a span holds ``m`` sentences); the cut points are
uniform among the sentence boundaries.  A span of a single sentence (a one-sentence document, or
a sentence too long to share a span) is skipped (``sentence_reorder_single_sentence_span``) when
``m >= 2``: it could only be class 0.  The number of segments is visible from the ``[SEP]`` count,
as ERNIE's segment markers make it; the model learns the order within it.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any, Iterator, Sequence

import numpy as np

from zhmask.checks import register_check
from zhmask.errors import ZhmaskError
from zhmask.labels import TASKS, register
from zhmask.labels.pairs import Segment, check_sources, ints, segments_example, sep_positions
from zhmask.record import SENTENCE_LABEL, Document, Example
from zhmask.steps.pack import pack_ranges, sentence_token_ranges

TASK = "sentence_reorder"
OPTIONS = {"reorder_max_segments": 3}
MAX_M = 6  # 873 classes


def num_classes(m: int) -> int:
    """``sum_{n=1..m} n!``: 9 for m = 3."""
    return sum(math.factorial(n) for n in range(1, m + 1))


@lru_cache(maxsize=None)
def _table(m: int) -> tuple[tuple[int, ...], ...]:
    return tuple(p for n in range(1, m + 1) for p in itertools.permutations(range(n)))


def permutation_of(label: int, m: int = 3) -> tuple[int, ...]:
    """The ordering of class ``label``: shown segment i is original segment ``perm[i]``."""
    if not 0 <= label < num_classes(m):
        raise ValueError(f"label {label} outside 0..{num_classes(m) - 1} for m = {m}")
    return _table(m)[label]


def label_of(perm: Sequence[int]) -> int:
    """The class of an ordering (independent of ``m`` as long as ``len(perm) <= m``)."""
    perm = tuple(int(x) for x in perm)
    n = len(perm)
    if n == 0 or sorted(perm) != list(range(n)):
        raise ValueError(f"{perm} is not a permutation of 0..{n - 1}")
    offset = num_classes(n - 1)
    rank = 0
    rest = list(range(n))
    for i, x in enumerate(perm):  # lexicographic rank
        k = rest.index(x)
        rank += k * math.factorial(n - 1 - i)
        rest.pop(k)
    return offset + rank


def restore(shown: Sequence, label: int, m: int = 3) -> list:
    """The segments in their original order: the inverse of the labelled permutation."""
    perm = permutation_of(label, m)
    if len(perm) != len(shown):
        raise ValueError(f"label {label} orders {len(perm)} segments, got {len(shown)}")
    out: list = [None] * len(perm)
    for i, p in enumerate(perm):
        out[p] = shown[i]
    return out


def _m(config) -> int:
    return TASKS.option(TASK, config, "reorder_max_segments")


def _validate(config) -> None:
    m = _m(config)
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_M:
        raise ZhmaskError(f"--option reorder_max_segments: expected an integer from 1 to {MAX_M}, got {m!r}")
    if config.max_seq_length - 1 - m < 2:
        raise ZhmaskError(f"--option reorder_max_segments={m} leaves no room for text in --max-seq-length "
                          f"{config.max_seq_length}")


@register(TASK, options=OPTIONS, validate=_validate,
          columns=("segment_sources", "span_bounds"),
          traits=("sentence_label",), help="the permutation that restores shuffled segments (ERNIE 2.0)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    m = _m(ctx.config)
    table = _table(m)
    # classes ordering n segments: n = 1 -> [0, 1), n = 2 -> [1, 3), n = 3 -> [3, 9), ...
    upto = [num_classes(n) for n in range(0, m + 1)]
    budget = ctx.config.max_seq_length - 1 - m  # text tokens; one [SEP] per segment, [CLS]
    for doc in docs:
        ranges = sentence_token_ranges(doc, budget, ctx.events)
        spans = pack_ranges(ranges, budget, 0.0, ctx.rng(doc.id, "sentence_reorder_pack"))
        rng = ctx.rng(doc.id, "sentence_reorder_label")
        k = 0
        for span in spans:
            if len(span) < 2 <= m:  # nothing to reorder: would always be class 0, visible from one [SEP]
                ctx.events["sentence_reorder_single_sentence_span"] += 1
                continue
            label = int(rng.integers(upto[min(m, len(span))]))
            perm = table[label]
            n = len(perm)
            cuts = sorted((rng.choice(len(span) - 1, n - 1, replace=False) + 1).tolist()) if n > 1 else []
            bounds = [0] + cuts + [len(span)]
            segs = [Segment(doc, span[bounds[i]:bounds[i + 1]]) for i in range(n)]
            ex = segments_example([segs[p] for p in perm], ctx, task=TASK, example_id=f"{doc.id}#{TASK}{k}",
                                  label=label, doc_id=doc.id)
            ex.token_type_ids = np.zeros(len(ex.input_ids), dtype=np.int8)
            seps = np.flatnonzero(ex.word_ids == -1)[1:]  # [CLS] then one [SEP] per segment
            ex.extra["span_bounds"] = np.concatenate([[1], seps + 1]).astype(np.int32)
            ctx.events[f"sentence_reorder_segments_{n}"] += 1
            k += 1
            yield ex


@register_check(TASK)
def check_sentence_reorder(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    m = int((ctx.get("config") or {}).get("options", {}).get("reorder_max_segments", OPTIONS["reorder_max_segments"]))
    label = row.get(SENTENCE_LABEL)
    if label is None or not 0 <= label < num_classes(m):
        return [f"label {label!r} not in 0..{num_classes(m) - 1}"]
    n = len(permutation_of(label, m))
    bad: list[str] = []
    ids, tt, sb = ints(row.get("input_ids")), ints(row.get("token_type_ids")), ints(row.get("span_bounds"))
    seps = sep_positions(row, ctx)
    if len(seps) != n or seps[-1] != len(ids) - 1:
        bad.append(f"label {label} orders {n} segment(s) but the row has {len(seps)} [SEP] (the last at the end)")
    elif sb != [1] + [p + 1 for p in seps]:
        bad.append("span_bounds are not [1] + (each [SEP] position + 1)")
    elif any(b - a < 2 for a, b in zip(sb, sb[1:])):
        bad.append("an empty segment")
    if any(tt):
        bad.append("token_type_ids not all 0")
    return bad + check_sources(row, n)

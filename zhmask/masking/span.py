"""``span``: SpanBERT's span masking (Joshi et al. 2020).

Span lengths, counted in words, follow a geometric distribution Geo(``span_p`` = 0.2) clipped
at ``span_max`` = 10 words and renormalised (as SpanBERT's code does; mean 3.8 words); a span
starts at a word start and covers whole words, so it is anchored at word boundaries.  Spans
are selected one after another without overlap and never cross a [SEP]; the
[MASK]/random/keep fate is drawn once per span, as in the paper.

Spans never touch: the words on either side of a span stay unpredicted (``gap=1`` in
:func:`zhmask.masking.units.sample_rows_ngrams`), so every span has two unmasked boundary
tokens for SpanBERT's span boundary objective, and a span is exactly a maximal run of predicted
positions.  The spans are stored in the ``span_bounds`` column with the layout ERNIE-GEN uses:
cumulative offsets ``[0, b1, ..., P]`` into the row's predicted tokens (``P`` = positions with
``labels != -100``, in order); span *j* is predicted tokens ``b_j .. b_{j+1} - 1``
(:func:`span_positions` turns them into ``[start, end)`` positions of ``input_ids``).
"""
from __future__ import annotations

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.masking import STRATEGIES, register
from zhmask.masking.ngram import make_ngram_mask
from zhmask.masking.units import geometric_probs

SPAN_OPTIONS = {"span_p": 0.2, "span_max": 10}


def own_span_bounds(task: str | None) -> bool:
    """Whether rows of ``task`` carry a ``span_bounds`` of their own layout (docs/schema.md), which
    they keep: the tasks that declare the column (ERNIE-GEN, seq2seq, sentence_reorder)."""
    from zhmask.labels import tasks_filling

    return task in tasks_filling("span_bounds")


def span_probs(config):
    p = STRATEGIES.option("span", config, "span_p")
    mx = STRATEGIES.option("span", config, "span_max")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ZhmaskError(f"--option span_p: expected a probability in (0, 1], got {p!r}")
    if isinstance(mx, bool) or not isinstance(mx, int) or not 1 <= mx <= 64:
        raise ZhmaskError(f"--option span_max: expected an integer in [1, 64], got {mx!r}")
    return geometric_probs(float(p), mx)


def span_bounds_rows(labels: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``span_bounds`` of every row of a concatenation (row i is the next ``lens[i]`` labels):
    (flat int32 values of all rows in order, count per row).  A span is a maximal run of
    predicted positions (spans never touch); a row without one gets ``[0]``."""
    labels = np.asarray(labels)
    lens = np.asarray(lens, dtype=np.int64)
    n = len(lens)
    ends = np.cumsum(lens)
    starts = ends - lens
    has = labels != -100
    first = has.copy()  # a predicted position that starts a run
    if len(has) > 1:
        first[1:] &= ~has[:-1]
    first[starts[lens > 0]] = has[starts[lens > 0]]
    c = np.zeros(len(has) + 1, dtype=np.int64)
    np.cumsum(has, out=c[1:])
    run_pos = np.flatnonzero(first)
    run_row = np.searchsorted(ends, run_pos, side="right")
    run_off = c[run_pos] - c[starts[run_row]]
    total = c[ends] - c[starts]  # predicted tokens per row: the closing bound
    row = np.concatenate([run_row, np.arange(n)])
    val = np.concatenate([run_off, total])
    order = np.lexsort((np.concatenate([np.zeros(len(run_row), np.int8), np.ones(n, np.int8)]), row))
    counts = np.bincount(run_row, minlength=n) + 1
    return val[order].astype(np.int32), counts


def span_bounds(labels) -> np.ndarray:
    """``span_bounds`` of one row from its ``labels``."""
    lab = np.asarray(labels)
    return span_bounds_rows(lab, np.array([len(lab)]))[0]


def span_positions(labels, bounds) -> list[tuple[int, int]]:
    """The spans of a row as ``[start, end)`` positions of ``input_ids``: the boundary tokens of
    span *j* (SpanBERT's x_{s-1}, x_{e+1}) are ``start - 1`` and ``end``."""
    pos = np.flatnonzero(np.asarray(labels) != -100)
    b = np.asarray(bounds, dtype=np.int64)
    return [(int(pos[a]), int(pos[e - 1]) + 1) for a, e in zip(b[:-1].tolist(), b[1:].tolist())]


def label_columns(labels: np.ndarray, lens: np.ndarray) -> dict:
    """The columns the strategy adds to its rows, from their labels (see the module text)."""
    return {"span_bounds": span_bounds_rows(labels, lens)}


@register("span", options=SPAN_OPTIONS, validate=span_probs, columns=("span_bounds",),
          traits=("whole_word", "uses_segmentation", "random_tokens"),
          help="geometric spans of whole words (SpanBERT)")
def make(config, ctx):
    mask = make_ngram_mask("span", config, ctx, span_probs(config), unit_word="span", gap=1)
    mask.label_columns = label_columns  # type: ignore[attr-defined]
    return mask


@STRATEGIES.add_check("span")
def check_span_row(row: dict, ctx: dict) -> list[str]:
    """``span_bounds`` are the runs of predicted positions (rows of tasks that write their own
    ``span_bounds`` keep theirs: :func:`own_span_bounds`)."""
    from zhmask.masking.checks import masked_arrays

    arrays = masked_arrays(row)
    if arrays is None or own_span_bounds(row.get("task")):
        return []
    sb = row.get("span_bounds")
    if sb is None:
        return ["--masking span: no span_bounds"]
    if [int(x) for x in sb] != span_bounds(arrays[1]).tolist():
        return ["--masking span: span_bounds are not the runs of predicted positions"]
    return []

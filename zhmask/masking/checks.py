"""Row invariants of masked rows for ``zhmask verify`` (registered for every known task).

* ``none``: no labels;
* every strategy: at most ``max_predictions_per_seq`` labelled tokens; a token that differs
  from its label is labelled (checked in common), labels only on candidate tokens;
* ``wwm``, ``ngram``, ``mac``, ``span`` and ``knowledge`` without the char level (in the row's
  stage, under ``knowledge_stages``): a word is labelled whole or not at all;
* ``mac``: no [MASK] in the input;
* ``span`` (rows of tasks without a ``span_bounds`` of their own): ``span_bounds`` is the spans
  read from ``labels`` (maximal runs of predicted positions, so spans never touch);
* a replacement (a predicted token that is neither its label nor [MASK]) is never a bracketed
  vocabulary entry: no [UNK], [CLS], [PAD] ... and no [unused*] slot.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from zhmask.masking.span import own_span_bounds_tasks, span_bounds

WHOLE_WORD = ("wwm", "ngram", "mac", "span", "knowledge")


def check_masked_row(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    cfg = ctx.get("config") or {}
    name = cfg.get("masking", "none")
    if row.get("source_ids") is not None or row.get("doc_bounds") is not None:  # generation, clm: never masked
        return []
    ids = np.asarray(row.get("input_ids") or [], dtype=np.int64)
    lab = np.asarray(row.get("labels") or [], dtype=np.int64)
    wid = np.asarray(row.get("word_ids") or [], dtype=np.int64)
    if not (len(ids) == len(lab) == len(wid)):
        return []  # reported by the common checks
    has = lab != -100
    bad: list[str] = []
    if name == "none":
        if has.any():
            bad.append("labels in a build with --masking none")
        return bad
    cap = int(cfg.get("max_predictions_per_seq", 1 << 30))
    if int(has.sum()) > cap:
        bad.append(f"{int(has.sum())} predicted tokens, more than max_predictions_per_seq {cap}")
    whole = name in WHOLE_WORD
    if name == "knowledge":
        from zhmask.masking.knowledge import row_levels

        levels = row_levels(cfg, row.get("example_id", ""))  # the row's stage under knowledge_stages
        whole = float(levels.get("char", 0) or 0) <= 0
    if whole and has.any():
        w = wid >= 0
        if w.any():
            k = wid[w]
            tot = np.bincount(k)
            lab_n = np.bincount(k, weights=has[w].astype(np.float64), minlength=len(tot))
            if ((lab_n > 0) & (lab_n < tot)).any():
                bad.append(f"--masking {name}: a word is only partly predicted")
    if name == "span" and row.get("task") not in own_span_bounds_tasks():
        sb = row.get("span_bounds")
        if sb is None:
            bad.append("--masking span: no span_bounds")
        elif [int(x) for x in sb] != span_bounds(lab).tolist():
            bad.append("--masking span: span_bounds are not the runs of predicted positions")
    if name == "mac" and (ids == ctx.get("mask_id", -1)).any():
        bad.append("--masking mac: a [MASK] token in the input")
    replaced = ids[has & (ids != lab) & (ids != ctx.get("mask_id", -1))]
    if len(replaced) and ctx.get("bracketed_ids") is not None and np.isin(replaced, ctx["bracketed_ids"]).any():
        bad.append(f"--masking {name}: a token replaced by a special or [unused] token")
    return bad


def register_for_tasks() -> None:
    from zhmask.checks import CHECKS, register_check
    from zhmask.labels import TASKS

    for task in list(TASKS):
        if check_masked_row not in CHECKS.get(task, []):
            register_check(task)(check_masked_row)

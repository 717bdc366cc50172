"""Row invariants of masked rows for ``zhmask verify``: :func:`check_masked_row` runs on the rows
of every strategy (``STRATEGIES.common_checks``); a strategy adds its own with
``@STRATEGIES.add_check(name)`` beside its code.

* ``none``: no labels;
* every strategy: at most ``max_predictions_per_seq`` labelled tokens; a token that differs
  from its label is labelled (checked in common), labels only on candidate tokens;
* strategies with the trait ``whole_word`` (``wwm``, ``ngram``, ``mac``, ``span``): a word is
  labelled whole or not at all (``knowledge`` checks it in the rows of stages without the char
  level: :func:`zhmask.masking.knowledge.check_knowledge_row`);
* ``mac``: no [MASK] in the input; ``span``: ``span_bounds`` are the runs of predicted positions;
* a replacement (a predicted token that is neither its label nor [MASK]) is never a bracketed
  vocabulary entry: no [UNK], [CLS], [PAD] ... and no [unused*] slot.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from zhmask.masking import STRATEGIES


def masked_arrays(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(input_ids, labels, word_ids) of a masked row, or None for rows no strategy masks
    (generation, clm) and rows whose lengths differ (reported by the common checks)."""
    if row.get("source_ids") is not None or row.get("doc_bounds") is not None:
        return None
    ids = np.asarray(row.get("input_ids") or [], dtype=np.int64)
    lab = np.asarray(row.get("labels") or [], dtype=np.int64)
    wid = np.asarray(row.get("word_ids") or [], dtype=np.int64)
    if not (len(ids) == len(lab) == len(wid)):
        return None
    return ids, lab, wid


def partly_predicted(wid: np.ndarray, has: np.ndarray) -> bool:
    """Whether some word (``wid``, -1 for specials) has some but not all tokens predicted (``has``)."""
    w = wid >= 0
    if not (w.any() and has.any()):
        return False
    k = wid[w]
    tot = np.bincount(k)
    lab_n = np.bincount(k, weights=has[w].astype(np.float64), minlength=len(tot))
    return bool(((lab_n > 0) & (lab_n < tot)).any())


def check_masked_row(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    cfg = ctx.get("config") or {}
    name = cfg.get("masking", "none")
    arrays = masked_arrays(row)
    if arrays is None:
        return []
    ids, lab, wid = arrays
    has = lab != -100
    bad: list[str] = []
    if STRATEGIES.has(name, "no_masks", unknown=False):
        if has.any():
            bad.append("labels in a build with --masking none")
        return bad
    cap = int(cfg.get("max_predictions_per_seq", 1 << 30))
    if int(has.sum()) > cap:
        bad.append(f"{int(has.sum())} predicted tokens, more than max_predictions_per_seq {cap}")
    if STRATEGIES.has(name, "whole_word", unknown=False) and partly_predicted(wid, has):
        bad.append(f"--masking {name}: a word is only partly predicted")
    replaced = ids[has & (ids != lab) & (ids != ctx.get("mask_id", -1))]
    if len(replaced) and ctx.get("bracketed_ids") is not None and np.isin(replaced, ctx["bracketed_ids"]).any():
        bad.append(f"--masking {name}: a token replaced by a special or [unused] token")
    return bad

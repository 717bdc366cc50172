"""``plm``: permutation language modelling rows (XLNet, Yang et al. 2019); see docs/autoregressive.md.

Rows are ``mlm``'s (``[CLS] text [SEP]``, whole sentences of one document, the same packing),
inputs unmasked.  Each row stores, drawn from the generator of (seed, example id, ``plm``):

* ``perm_order``: the factorisation order, a permutation of the row's positions.  [CLS] and [SEP]
  come first (in position order: context every token sees, never predicted), then the text's
  units in a random order.  A unit is a segmented word under ``--plm-units word`` (the default:
  its tokens stay contiguous and in their order, so a word is predicted whole, the permutation
  analogue of whole-word masking) or a single token under ``--plm-units token`` (XLNet's original).
* ``num_predict``: how many of the order's last positions are predicted (XLNet's partial
  prediction: the last 1/K of the order, K = 6 by default, ``--option plm_k=K``): the shortest
  suffix of whole units holding at least ``ceil(m / K)`` of the row's ``m`` text tokens (under
  ``token`` units exactly ``ceil(m / K)``).

Nothing n x n is stored: :func:`xlnet_inputs` builds ``perm_mask`` and ``target_mapping`` in the
layout of transformers' XLNet models when a batch is loaded.  ``labels`` stay -100 in the shards
(the predicted tokens are the inputs at the predicted positions).
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from zhmask.checks import register_check
from zhmask.errors import ZhmaskError
from zhmask.labels import TASKS, check_unmasked, register
from zhmask.record import Document, Example
from zhmask.rng import Draws

TASK = "plm"
DEFAULT_K = 6  # XLNet's partial prediction: the last 1/K of the order is predicted


def _k(config) -> int:
    k = TASKS.option(TASK, config, "plm_k")
    try:
        k = int(k)
    except (TypeError, ValueError):
        k = 0
    if k < 1:
        raise ZhmaskError(f"--option plm_k: a whole number of at least 1 (the last 1/K of the order is predicted), "
                          f"got {TASKS.option(TASK, config, 'plm_k')!r}")
    return k


def _validate(config) -> None:
    check_unmasked(config, "plm", "predicts tokens from a permutation of the others, unmasked")
    if config.packing != "document":
        raise ZhmaskError("--tasks plm rows hold one document each (--packing document)")
    _k(config)


@register(TASK, options={"plm_k": DEFAULT_K}, validate=_validate,
          columns=("perm_order", "num_predict"), traits=("unmasked",), help="permutation language modelling (XLNet)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    from zhmask.labels.pairs import batched

    return iter(batched(lambda part, events: unit_examples(part, ctx, events), docs, ctx, TASK))


def unit_examples(docs: list[Document], ctx, events) -> list[Example]:
    """The unit's ``plm`` rows: ``mlm``'s rows, each with its order and predicted count."""
    from zhmask.labels.mlm import unit_examples as mlm_rows

    exs = mlm_rows(docs, ctx, events, task=TASK)
    k = _k(ctx.config)
    whole_words = ctx.config.plm_units == "word"
    for ex in exs:
        order, p = factorisation_order(np.asarray(ex.word_ids), ctx.rng(ex.example_id, TASK), k, whole_words)
        ex.extra["perm_order"] = order
        ex.extra["num_predict"] = p
    return exs


def units(word_ids: np.ndarray, whole_words: bool) -> np.ndarray:
    """Per position of a row, its unit of the factorisation order (0, 1, ... in position order;
    -1 for [CLS]/[SEP], word id -1): the word (``whole_words``) or the token."""
    wid = np.asarray(word_ids, dtype=np.int64)
    text = wid >= 0
    out = np.full(len(wid), -1, dtype=np.int64)
    if not text.any():
        return out
    w = wid[text]
    new = np.ones(len(w), dtype=bool)
    if whole_words:
        new[1:] = w[1:] != w[:-1]
    out[text] = np.cumsum(new) - 1
    return out


def factorisation_order(word_ids: np.ndarray, rng: Draws, k: int = DEFAULT_K,
                        whole_words: bool = True) -> tuple[np.ndarray, int]:
    """(``perm_order``, ``num_predict``) of a row with these word ids (module docstring): one
    permutation of the units drawn from ``rng``."""
    unit = units(word_ids, whole_words)
    n = len(unit)
    special = np.flatnonzero(unit < 0)
    text = np.flatnonzero(unit >= 0)
    if not len(text):
        return np.arange(n, dtype=np.int32), 0
    n_units = int(unit[text[-1]]) + 1
    rank = np.empty(n_units, dtype=np.int64)
    rank[rng.permutation(n_units)] = np.arange(n_units)   # unit u is the rank[u]-th of the order
    # text positions by their unit's rank, then by position (a word's tokens stay in order)
    order = np.concatenate([special, text[np.lexsort((text, rank[unit[text]]))]]).astype(np.int32)
    sizes = np.bincount(unit[text], minlength=n_units)[np.argsort(rank)]   # unit sizes in order
    need = math.ceil(len(text) / k)
    suffix = np.cumsum(sizes[::-1])
    return order, int(suffix[int(np.searchsorted(suffix, need))])


def predicted_positions(order: np.ndarray, num_predict: int) -> np.ndarray:
    """The predicted positions of a row, ascending (the order of ``target_mapping``'s rows)."""
    order = np.asarray(order, dtype=np.int64)
    return np.sort(order[len(order) - int(num_predict):]) if num_predict > 0 else np.zeros(0, dtype=np.int64)


def perm_mask(order: np.ndarray, num_predict: int) -> np.ndarray:
    """XLNet's ``perm_mask`` [n, n] of one row (1.0: query ``i`` may not attend to key ``j``):
    a token outside the predicted suffix of ``order`` is context, seen by every position; a
    predicted token is seen only by the predicted tokens after it in the order.  So a predicted
    token never sees itself (its query stream) and context never sees a predicted token (no
    leak through the content stream), as in XLNet's ``_local_perm`` under partial prediction."""
    order = np.asarray(order, dtype=np.int64)
    n = len(order)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    target = rank >= n - int(num_predict)
    later = rank[None, :] >= rank[:, None]            # key j is i itself or after it in the order
    blocked = target[None, :] & (later | ~target[:, None])
    return blocked.astype(np.float32)


def xlnet_inputs(rows: Sequence[Mapping[str, Any]], pad_id: int, pad_to_multiple_of: int | None = None,
                 return_tensors: str = "pt") -> dict[str, Any]:
    """A padded batch of ``plm`` rows in the layout of transformers' ``XLNetLMHeadModel``:
    ``input_ids`` [b, n], ``attention_mask`` [b, n] (1 on real tokens), ``token_type_ids`` [b, n],
    ``perm_mask`` [b, n, n] float (:func:`perm_mask`), ``target_mapping`` [b, p, n] float (row t
    one-hot at the t-th predicted position, ascending; p the batch's largest ``num_predict``) and
    ``labels`` [b, p] (the input ids there, -100 past a row's ``num_predict``).  A padding
    position is never attended to and never predicted, and attends to nothing itself.
    ``return_tensors``: "pt" (torch tensors) or "np"."""
    from zhmask.reader import pad_rows

    if return_tensors not in ("pt", "np"):
        raise ZhmaskError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
    rows = list(rows)
    for r in rows:
        if r.get("perm_order") is None or r.get("num_predict") is None:
            raise ZhmaskError(f"row {r.get('example_id', '?')}: no perm_order/num_predict (not a --tasks plm row)")
    ids_l = [np.asarray(r["input_ids"]) for r in rows]
    out = pad_rows(rows, ids_l, [None] * len(rows), pad_id, pad_to_multiple_of)
    del out["labels"]
    B, T = out["input_ids"].shape
    P = max([int(r["num_predict"]) for r in rows] + [1])
    pm = np.ones((B, T, T), dtype=np.float32)
    tm = np.zeros((B, P, T), dtype=np.float32)
    labels = np.full((B, P), -100, dtype=np.int64)
    for i, (r, ids) in enumerate(zip(rows, ids_l)):
        n, p = len(ids), int(r["num_predict"])
        if len(r["perm_order"]) != n:
            raise ZhmaskError(f"row {r.get('example_id', '?')}: perm_order of {len(r['perm_order'])} positions "
                              f"for {n} tokens")
        pm[i, :n, :n] = perm_mask(r["perm_order"], p)
        pos = predicted_positions(r["perm_order"], p)
        tm[i, np.arange(len(pos)), pos] = 1.0
        labels[i, :len(pos)] = ids[pos]
    out.update(perm_mask=pm, target_mapping=tm, labels=labels)
    if return_tensors == "pt":
        import torch

        out = {k: torch.from_numpy(v) for k, v in out.items()}
    return out


@register_check(TASK)
def check_plm(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    """``[CLS] text [SEP]`` (as ``mlm``'s rows); ``perm_order`` a permutation of the positions
    with [CLS]/[SEP] first; under word units every word contiguous and in order in it;
    ``num_predict`` the shortest suffix of whole units with at least ceil(m / K) text tokens."""
    from zhmask.labels.mlm import check_mlm

    bad = check_mlm(row, ctx)
    def arr(name: str) -> np.ndarray:
        v = row.get(name)
        return np.asarray(v if v is not None else [], dtype=np.int64)

    n = len(arr("input_ids"))
    order = row.get("perm_order")
    p = row.get("num_predict")
    if order is None or p is None:
        return bad + ["no perm_order or num_predict"]
    order = np.asarray(order, dtype=np.int64)
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        return bad + [f"perm_order is not a permutation of the {n} positions"]
    cfg = ctx.get("config") or {}
    unit = units(arr("word_ids"), (cfg.get("plm_units") or "word") == "word")
    if len(unit) != n:
        return bad
    s = int((unit < 0).sum())
    if not np.array_equal(order[:s], np.flatnonzero(unit < 0)):
        bad.append("perm_order does not start with the [CLS]/[SEP] positions")
        return bad
    u = unit[order[s:]]
    runs = np.flatnonzero(np.diff(u) != 0) + 1           # where a new unit starts in the order
    if len(runs) + 1 != len(np.unique(u)) or (np.diff(order[s:])[np.diff(u) == 0] != 1).any():
        bad.append("a unit (word) is split or out of order in perm_order")
        return bad
    try:
        k = int((cfg.get("options") or {}).get("plm_k", DEFAULT_K))
    except (TypeError, ValueError):
        k = DEFAULT_K
    m = n - s
    starts = np.concatenate([[0], runs])                   # unit starts in order[s:]
    cut = m - int(p)
    fits = starts[m - starts >= math.ceil(m / max(k, 1))]
    if int(p) < 1 or cut not in starts or not len(fits) or cut != int(fits[-1]):
        bad.append(f"num_predict {p} is not the shortest suffix of whole units with at least "
                   f"ceil({m} / {k}) tokens")
    return bad

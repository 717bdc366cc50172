"""The attention masks of ERNIE-GEN's multi-flow attention (numpy, batched; torch optional).

An example has ``ns`` source positions (``[CLS] S' [SEP]``) and ``nt`` target positions
(``T [SEP]``); together they are the ``L = ns + nt`` positions of the **contextual flow**.  The
two generation flows each add one ``[ATTN]`` query per target position; their keys are the
``L`` contextual positions followed by the ``nt`` ``[ATTN]`` positions of the same flow.
``True`` means "may attend".

* contextual flow, ``(L, L)``: a source position sees every source position; target position
  ``i`` sees every source position and target positions ``0..i`` (the earlier ones and itself);
* word-by-word flow, ``(nt, L + nt)``: the query ``[ATTN]_i`` sees every source position,
  target positions ``0..i-1`` of the contextual flow, and itself (key ``L + i``);
* span-by-span flow, ``(nt, L + nt)``: the query ``[ATTN]_i`` of a span starting at target
  position ``a`` sees every source position, target positions ``0..a-1``, and itself, and
  nothing else of its own span, so a span's words are predicted together.

``span_starts[i]`` is the first target position of position i's span; :func:`span_starts`
computes it from cumulative span bounds.  :func:`batch_masks` pads a batch (padding cells are
False; padded queries see nothing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class FlowMasks:
    contextual: np.ndarray  # bool (..., L, L)
    word: np.ndarray  # bool (..., nt, L + nt)
    span: np.ndarray  # bool (..., nt, L + nt)


def span_starts(span_bounds: Sequence[int], n_target: int) -> np.ndarray:
    """Start of each target position's span; positions past the last bound are their own span."""
    sb = np.asarray(span_bounds, dtype=np.int64)
    pos = np.arange(n_target)
    if len(sb) == 0:
        return pos.astype(np.int32)
    idx = np.searchsorted(sb, pos, side="right") - 1
    starts = np.where(idx >= 0, sb[np.clip(idx, 0, None)], pos)
    last = sb[-1]
    starts = np.where(pos >= last, pos, starts)  # e.g. the closing [SEP]
    return starts.astype(np.int32)


def flow_masks(n_source: int, n_target: int, starts: Sequence[int] | None = None) -> FlowMasks:
    """The three masks of one example; ``starts`` None means every target token is its own span."""
    out = batch_masks([n_source], [n_target], None if starts is None else [starts])
    return FlowMasks(out.contextual[0], out.word[0], out.span[0])


def batch_masks(n_source: Sequence[int], n_target: Sequence[int],
                starts: Sequence[Sequence[int]] | None = None) -> FlowMasks:
    """Masks for a batch, padded to the longest ``L`` and ``nt``: shapes (B, Lm, Lm) and
    (B, ntm, Lm + ntm).  In the padded generation flows the [ATTN] keys start at column ``Lm``."""
    ns = np.asarray(n_source, dtype=np.int64)[:, None, None]
    nt = np.asarray(n_target, dtype=np.int64)[:, None, None]
    b = len(n_source)
    lm = int((ns + nt).max()) if b else 0
    tm = int(nt.max()) if b else 0
    length = ns + nt
    # contextual flow
    q = np.arange(lm)[None, :, None]
    k = np.arange(lm)[None, None, :]
    valid = (q < length) & (k < length)
    ctx = ((k < ns) | ((q >= ns) & (k >= ns) & (k <= q))) & valid
    # generation flows: query i (target position), keys [0, lm) contextual then [lm, lm + tm) [ATTN]
    st = np.zeros((b, tm), dtype=np.int64)
    for j in range(b):
        t = int(n_target[j])
        st[j, :t] = np.arange(t) if starts is None else np.asarray(starts[j], dtype=np.int64)[:t]
    i = np.arange(tm)[None, :, None]
    kk = np.arange(lm + tm)[None, None, :]
    qvalid = i < nt
    own = kk == lm + i
    word = ((kk < ns + i) | own) & qvalid
    span = ((kk < ns + st[:, :, None]) | own) & qvalid
    return FlowMasks(ctx, word, span)


def row_masks(row: dict[str, Any]) -> FlowMasks:
    """Masks of one shard row of ``ernie_gen`` or ``seq2seq``: the source is ``source_ids``, the
    target part is the rest of ``input_ids`` (the target and its closing [SEP])."""
    ns = len(row["source_ids"])
    nt = len(row["input_ids"]) - ns
    sb = row.get("span_bounds")
    sb = [] if sb is None else sb
    return flow_masks(ns, nt, span_starts(sb, nt))


def to_additive(mask: np.ndarray, dtype: Any = None):
    """A boolean mask as an additive float mask (0 where allowed, -inf elsewhere), as a torch
    tensor when torch is installed, else as numpy float32."""
    try:
        import torch
    except ImportError:  # torch is optional
        return np.where(mask, 0.0, -np.inf).astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(mask))
    dt = dtype or torch.float32
    return torch.zeros(t.shape, dtype=dt).masked_fill(~t, float("-inf"))


def render(mask: np.ndarray, rows: Sequence[str], cols: Sequence[str]) -> str:
    """A small mask as text: ``■`` may attend, ``·`` may not."""
    w = max(len(c) for c in cols) if cols else 1
    rw = max(len(r) for r in rows) if rows else 1
    head = " " * (rw + 1) + " ".join(c.rjust(w) for c in cols)
    lines = [head]
    for r, line in zip(rows, mask):
        lines.append(r.rjust(rw) + " " + " ".join(("■" if x else "·").rjust(w) for x in line))
    return "\n".join(lines)

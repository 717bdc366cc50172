"""ERNIE-GEN multi-granularity target fragments, and the layout that ties source and target.

One example's original token sequence is cut into *words* (runs of tokens of one segmenter
word).  :func:`sample_fragments` draws, once per example, a length distribution from
``dists`` (default U(1,4) tokens with probability 0.4, U(4,32) tokens with probability 0.6, the
ERNIE-GEN paper's D and its probabilities) and then fragments of whole words until their tokens
are about ``ratio`` (25%) of the example's tokens:

* a fragment's length ``L`` is counted in **tokens**, drawn from the example's distribution,
  and rounded to the nearest word edge (a fragment never splits a word; it holds at least one
  word and never more than the distribution's maximum unless one word alone is longer);
* its start word is uniform over every free word where the rounded fragment fits without
  overlapping an earlier fragment (when none does, the free gap with the most tokens is taken
  whole and the fragment is marked ``clipped``);
* the fragment that reaches the token budget is shortened word by word to land as close as
  possible to the budget (marked ``clipped``), and sampling stops there;
* at least one word always stays in the source.

Fragments are then sorted by position: the source is the original sequence with the fragments
removed (no placeholder: ERNIE-GEN tells the model where a fragment belongs through position
ids, see :func:`original_positions`), the target is the fragments concatenated in order.
:func:`reassemble` puts them back together exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zhmask.rng import Draws

DEFAULT_DISTS = ((1, 4), (4, 32))
DEFAULT_PROBS = (0.4, 0.6)


@dataclass
class FragmentPlan:
    """Fragments of one example, in word units, sorted by start."""

    dist: int  # index of the chosen length distribution, -1 when nothing was sampled
    frags: list[tuple[int, int]] = field(default_factory=list)  # [start, end) word ranges, sorted
    drawn: list[int] = field(default_factory=list)  # drawn length in tokens of each fragment (same order)
    clipped: list[bool] = field(default_factory=list)  # fragment shortened (gap, budget or source) below its rounded length
    budget: int = 0  # target tokens aimed at
    gap_clipped: int = 0  # fragments shortened because no free gap held the drawn length


def word_runs(word_of_token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start token, token count) of each run of equal word index: the example's words."""
    n = len(word_of_token)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    change = np.ones(n, dtype=bool)
    change[1:] = word_of_token[1:] != word_of_token[:-1]
    starts = np.flatnonzero(change)
    counts = np.diff(np.append(starts, n))
    return starts, counts


def _fragment_end(cum: np.ndarray, start: np.ndarray, length: int, hi: int) -> np.ndarray:
    """Per start word, the end word of a fragment of about ``length`` tokens: the word edge
    nearest ``length`` tokens after the start (the shorter one on a tie), never above ``hi``
    tokens unless one word alone is longer, and at least one word."""
    goal = cum[start] + length
    k = np.searchsorted(cum, goal, side="left")  # first edge at or past the goal
    k = np.minimum(k, len(cum) - 1)
    below = np.maximum(k - 1, start + 1)
    nearer_below = (goal - cum[below]) <= (cum[k] - goal)
    end = np.where((k > start + 1) & nearer_below, below, k)
    end = np.where((cum[end] - cum[start] > hi) & (end > start + 1), end - 1, end)
    return np.maximum(end, start + 1)


def sample_fragments(word_tokens: np.ndarray, rng: Draws, ratio: float = 0.25,
                     dists=DEFAULT_DISTS, probs=DEFAULT_PROBS) -> FragmentPlan:
    """Fragments over words whose token counts are ``word_tokens``; see the module docstring."""
    m = len(word_tokens)
    cum = np.concatenate([[0], np.cumsum(word_tokens)]).astype(np.int64)
    n = int(cum[-1])
    budget = int(np.floor(ratio * n + 0.5))
    if m < 2 or budget < 1:
        return FragmentPlan(-1, budget=budget)
    dist = int(rng.choice(len(dists), p=np.asarray(probs, dtype=float)))
    lo, hi = dists[dist]
    gaps: list[tuple[int, int]] = [(0, m)]  # free word ranges, sorted
    out: list[tuple[int, int, int, bool]] = []
    taken = 0
    taken_words = 0
    gap_clip = 0
    while taken < budget and gaps:
        drawn = int(rng.integers(lo, hi + 1))  # tokens
        # every free start word whose fragment (drawn tokens rounded to a word edge) fits its gap
        starts = np.concatenate([np.arange(a, b) for a, b in gaps])
        gap_end = np.concatenate([np.full(b - a, b) for a, b in gaps])
        ends = _fragment_end(cum, starts, drawn, hi)
        fits = ends <= gap_end
        if fits.any():
            ok = np.flatnonzero(fits)
            pick = int(ok[int(rng.integers(len(ok)))])
            start, end = int(starts[pick]), int(ends[pick])
            clipped = False
        else:  # no free gap holds the fragment: the gap with the most tokens, whole
            g_tok = [int(cum[b] - cum[a]) for a, b in gaps]
            start, end = gaps[int(np.argmax(g_tok))]
            clipped = True
            gap_clip += 1
        g = next(i for i, (a, b) in enumerate(gaps) if a <= start < b)
        # keep at least one word in the source
        if taken_words + (end - start) >= m:
            end = start + (m - 1 - taken_words)
            clipped = True
        last = False
        remaining = budget - taken
        if cum[end] - cum[start] >= remaining:
            # the shortest prefix reaching the budget, or one word less when that lands closer
            k = int(np.searchsorted(cum, cum[start] + remaining, side="left"))
            k = min(max(k, start + 1), end)
            over = int(cum[k] - cum[start]) - remaining
            under = remaining - int(cum[k - 1] - cum[start])
            if under < over:
                k -= 1
            clipped = clipped or k < end
            end = k
            last = True
        if end <= start:
            break
        out.append((start, end, drawn, clipped))
        taken += int(cum[end] - cum[start])
        taken_words += end - start
        a, b = gaps[g]
        gaps[g:g + 1] = [x for x in ((a, start), (end, b)) if x[1] > x[0]]
        if last or taken_words >= m - 1:
            break
    out.sort()
    return FragmentPlan(dist, [(a, b) for a, b, _, _ in out], [d for _, _, d, _ in out],
                        [c for _, _, _, c in out], budget, gap_clip)


def split_source_target(ids: np.ndarray, word_start: np.ndarray, plan: FragmentPlan,
                        n_words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source tokens, target tokens, fragment token bounds as flat [s0, e0, s1, e1, ...])."""
    tok_start = np.append(word_start, len(ids))
    bounds = np.array([x for a, b in plan.frags for x in (tok_start[a], tok_start[b])], dtype=np.int32)
    keep = np.ones(len(ids), dtype=bool)
    parts = []
    for a, b in plan.frags:
        s, e = tok_start[a], tok_start[b]
        keep[s:e] = False
        parts.append(ids[s:e])
    target = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
    return ids[keep].astype(np.int32), target, bounds


# ---------------------------------------------------------------------------------- layout
def fragment_offsets(fragment_bounds) -> np.ndarray:
    """Target offsets [0, len(T1), len(T1)+len(T2), ..., len(T)] from the flat (start, end) pairs."""
    fb = np.asarray(fragment_bounds, dtype=np.int64).reshape(-1, 2)
    return np.concatenate([[0], np.cumsum(fb[:, 1] - fb[:, 0])]).astype(np.int32)


def reassemble(source: np.ndarray, target: np.ndarray, fragment_bounds) -> np.ndarray:
    """The original token sequence from source (no [CLS]/[SEP]), target and fragment bounds."""
    fb = np.asarray(fragment_bounds, dtype=np.int64).reshape(-1, 2)
    n = len(source) + len(target)
    out = np.empty(n, dtype=np.asarray(source).dtype if len(source) else np.int32)
    in_target = np.zeros(n, dtype=bool)
    for s, e in fb.tolist():
        in_target[s:e] = True
    out[in_target] = target
    out[~in_target] = source
    return out


def original_positions(n_source: int, n_target: int, fragment_bounds) -> tuple[np.ndarray, np.ndarray]:
    """Original positions (0-based, without [CLS]) of the source tokens and of the target tokens.

    A trainer adds 1 for [CLS] and uses them as position ids, so that the model knows where each
    fragment belongs although the source holds no placeholder.
    """
    fb = np.asarray(fragment_bounds, dtype=np.int64).reshape(-1, 2)
    n = n_source + n_target
    in_target = np.zeros(n, dtype=bool)
    for s, e in fb.tolist():
        in_target[s:e] = True
    pos = np.arange(n, dtype=np.int32)
    return pos[~in_target], pos[in_target]

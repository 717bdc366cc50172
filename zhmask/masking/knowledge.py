"""``knowledge``: ERNIE 1.0 knowledge masking (Sun et al. 2019).

ERNIE 1.0 masks in three stages: basic-level units (Chinese characters), phrase-level units and
entity-level units, each masked whole.  zhmask offers the levels as one configurable mix,
``--option knowledge_levels='{"entity": 0.4, "phrase": 0.3, "word": 0.3, "char": 0.0}'``:

* ``entity``: the example's entities of type PER, LOC, ORG, MISC (``Example.entities``);
* ``phrase``: its IDIOM and PHRASE spans;
* ``word``: a segmented word (the basic level over words);
* ``char``: one token (ERNIE's Chinese basic level).

Each step draws a level from the mix (renormalised over the levels that still have a free unit
fitting the remaining budget), then a unit of that level uniformly among the free ones that
fit; units never overlap, and none is cut.  The [MASK]/random/keep fate is drawn once per
unit.  One stage of ERNIE's schedule is one level alone, e.g. ``{"char": 1}``.  With ``char``
above 0, words are no longer always predicted whole (by design).
"""
from __future__ import annotations


import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.masking import STRATEGIES, register
from zhmask.masking.units import Masker, word_table

LEVELS = ("entity", "phrase", "word", "char")
ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")
PHRASE_TYPES = ("IDIOM", "PHRASE")
OPTIONS = {"knowledge_levels": {"entity": 0.4, "phrase": 0.3, "word": 0.3, "char": 0.0}}


def level_probs(config) -> np.ndarray:
    v = STRATEGIES.option("knowledge", config, "knowledge_levels")
    if not isinstance(v, dict) or not v:
        raise ZhmaskError(f"--option knowledge_levels: expected a table like {{\"entity\": 0.4, \"phrase\": 0.3, "
                          f"\"word\": 0.3}}, got {v!r}")
    bad = sorted(set(v) - set(LEVELS))
    if bad:
        raise ZhmaskError(f"--option knowledge_levels: unknown level {bad[0]!r}; levels: {', '.join(LEVELS)}")
    p = []
    for lv in LEVELS:
        x = v.get(lv, 0.0)
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0:
            raise ZhmaskError(f"--option knowledge_levels: {lv} must be a non-negative number, got {x!r}")
        p.append(float(x))
    arr = np.asarray(p)
    if arr.sum() <= 0:
        raise ZhmaskError("--option knowledge_levels: at least one level needs a positive weight")
    return arr / arr.sum()


@register("knowledge", options=OPTIONS, validate=level_probs)
def make(config, ctx):
    m = Masker(config, ctx)
    probs = level_probs(config)

    def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
        n = len(ids)
        ccand = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(~cand, out=ccand[1:])
        pools: list[tuple[np.ndarray, np.ndarray, list[str]]] = []
        for types in (ENTITY_TYPES, PHRASE_TYPES):
            sp = [(s, e, t) for s, e, t in example.entities if t in types and 0 <= s < e <= n]
            s = np.asarray([x[0] for x in sp], dtype=np.int64)
            e = np.asarray([x[1] for x in sp], dtype=np.int64)
            ok = (ccand[e] - ccand[s]) == 0 if len(s) else np.zeros(0, dtype=bool)
            pools.append((s[ok], e[ok], [x[2] for x, k in zip(sp, ok) if k]))
        wt = m.word_table(example, wid, cand)
        pools.append((wt.start[wt.ok], wt.end[wt.ok], []))
        cp = np.flatnonzero(cand)
        pools.append((cp, cp + 1, []))
        occ = np.zeros(n, dtype=bool)
        r = budget
        got_s: list[int] = []
        got_e: list[int] = []
        while r > 0:
            cocc = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(occ, out=cocc[1:])
            avail = []
            w = np.zeros(len(LEVELS))
            for li, (s, e, _) in enumerate(pools):
                if probs[li] <= 0 or len(s) == 0:
                    avail.append(None)
                    continue
                a = np.flatnonzero(((cocc[e] - cocc[s]) == 0) & ((e - s) <= r))
                avail.append(a)
                if len(a):
                    w[li] = probs[li]
            if w.sum() <= 0:
                break
            li = int(np.searchsorted(np.cumsum(w / w.sum()), rng.random(), side="right"))
            li = min(li, len(LEVELS) - 1)
            a = avail[li]
            k = int(a[int(rng.integers(len(a)))])
            s, e = int(pools[li][0][k]), int(pools[li][1][k])
            occ[s:e] = True
            r -= e - s
            got_s.append(s)
            got_e.append(e)
            stats[f"knowledge_units_{LEVELS[li]}"] += 1
            if li < 2:
                stats[f"knowledge_units_{pools[li][2][k]}"] += 1
        for li in range(2):
            stats[f"knowledge_{LEVELS[li]}_units_available"] += len(pools[li][0])
        return m.apply(ids, np.asarray(got_s, dtype=np.int64), np.asarray(got_e, dtype=np.int64), rng, stats,
                       n_cand, budget)

    return m.strategy(choose)

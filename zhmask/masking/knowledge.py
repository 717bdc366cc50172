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
unit.  With ``char`` above 0, words are no longer always predicted whole (by design).

ERNIE's staged schedule is ``--option knowledge_stages='[{"char": 1}, {"phrase": 1, "word": 1},
{"entity": 1}]'``: a list of such mixes, one per stage, in order.  The ``--dupe-factor`` copies of
an example are split into as many equal consecutive blocks (``dupe_factor`` must be a multiple of
the number of stages): copy ``k`` (example id ``...@k``) is masked with stage
``k * stages // dupe_factor``.  A trainer consumes the stages in order by reading copy block 0,
then 1, then 2 (:func:`copy_of`, :func:`stage_of`); dynamic masking stages by epoch the same way
(epoch ``e`` is copy ``e``; epochs past the last copy stay in the last stage).
"""
from __future__ import annotations


import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.masking import STRATEGIES, register
from zhmask.masking.units import Masker, word_table

LEVELS = ("entity", "phrase", "word", "char")
ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")
PHRASE_TYPES = ("IDIOM", "PHRASE")
DEFAULT_LEVELS = {"entity": 0.4, "phrase": 0.3, "word": 0.3, "char": 0.0}
OPTIONS = {"knowledge_levels": DEFAULT_LEVELS, "knowledge_stages": None}


def _mix(v, what: str) -> np.ndarray:
    """A level mix (a table level -> weight) as probabilities in LEVELS order."""
    if not isinstance(v, dict) or not v:
        raise ZhmaskError(f"--option {what}: expected a table like {{\"entity\": 0.4, \"phrase\": 0.3, "
                          f"\"word\": 0.3}}, got {v!r}")
    bad = sorted(set(v) - set(LEVELS))
    if bad:
        raise ZhmaskError(f"--option {what}: unknown level {bad[0]!r}; levels: {', '.join(LEVELS)}")
    p = []
    for lv in LEVELS:
        x = v.get(lv, 0.0)
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0:
            raise ZhmaskError(f"--option {what}: {lv} must be a non-negative number, got {x!r}")
        p.append(float(x))
    arr = np.asarray(p)
    if arr.sum() <= 0:
        raise ZhmaskError(f"--option {what}: at least one level needs a positive weight")
    return arr / arr.sum()


def stage_probs(config) -> list[np.ndarray]:
    """The level mix of each stage, in order (one stage: ``knowledge_levels``); raises ZhmaskError
    with one line on a bad table or a ``dupe_factor`` the stages do not divide."""
    stages = STRATEGIES.option("knowledge", config, "knowledge_stages")
    if stages is None:
        return [_mix(STRATEGIES.option("knowledge", config, "knowledge_levels"), "knowledge_levels")]
    if "knowledge_levels" in config.options:
        raise ZhmaskError("--option knowledge_levels and knowledge_stages: give one (a stage is a level mix)")
    if not isinstance(stages, (list, tuple)) or not stages:
        raise ZhmaskError(f"--option knowledge_stages: expected a list of level tables, got {stages!r}")
    out = [_mix(v, f"knowledge_stages[{i}]") for i, v in enumerate(stages)]
    if config.dupe_factor % len(out):
        raise ZhmaskError(f"--option knowledge_stages: {len(out)} stage(s) need --dupe-factor a multiple of "
                          f"{len(out)} (one block of copies per stage), got {config.dupe_factor}")
    return out


def stage_of(copy: int, n_stages: int, dupe_factor: int) -> int:
    """The stage of copy ``copy`` (or dynamic epoch) of an example."""
    return min(int(copy) * n_stages // max(int(dupe_factor), 1), n_stages - 1)


def copy_of(example_id: str) -> int:
    """The ``--dupe-factor`` copy of a row from its example id (``...@k``; 0 without a suffix)."""
    _, sep, k = str(example_id).rpartition("@")
    return int(k) if sep and k.isdigit() else 0


def row_levels(config: dict, example_id: str) -> dict:
    """The level table (``knowledge_levels`` or its stage's) a shard row of a knowledge build was
    masked with; ``config`` is the build's configuration as stored in its manifest."""
    opts = config.get("options") or {}
    stages = opts.get("knowledge_stages")
    if not stages:
        return opts.get("knowledge_levels") or DEFAULT_LEVELS
    return stages[stage_of(copy_of(example_id), len(stages), int(config.get("dupe_factor", 1)))]


@register("knowledge", options=OPTIONS, validate=stage_probs)
def make(config, ctx):
    m = Masker(config, ctx)
    stages = stage_probs(config)
    masks = [m.strategy(_chooser(m, p)) for p in stages]
    if len(masks) == 1:
        return masks[0]

    def mask(example, rng, copy: int = 0):
        s = stage_of(copy, len(masks), config.dupe_factor)
        res = masks[s](example, rng)
        for key in [k for k in res.stats if k.startswith("knowledge_units_")]:
            res.stats[f"knowledge_stage{s}_{key[len('knowledge_'):]}"] += res.stats[key]
        res.stats[f"knowledge_stage{s}_rows"] += 1
        return res

    mask.per_copy = True  # type: ignore[attr-defined]
    mask.prepare_batch = m.prepare_batch  # type: ignore[attr-defined]
    mask.release = m.release  # type: ignore[attr-defined]
    return mask


def _chooser(m: Masker, probs: np.ndarray):
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

    return choose

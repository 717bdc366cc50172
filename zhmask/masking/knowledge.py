"""``knowledge``: ERNIE 1.0 knowledge masking (Sun et al. 2019).

ERNIE 1.0 masks in three stages: basic-level units (Chinese characters), phrase-level units and
entity-level units, each masked whole.  Its units come from lexical analysis: the sentence is
cut into units (an entity or a phrase is one unit, every other word one unit) and units are
masked at random until 15% of the tokens are: an entity is masked at the same rate as a word,
so about 15% of the entity mentions are (not most of them, which would make the entity
units, and their errors, dominate the predictions).  zhmask does the same, with a weight per
level, ``--option knowledge_levels='{"entity": 1, "phrase": 1, "word": 1, "char": 0}'``
(the default):

* ``entity``: the example's entities of type PER, LOC, ORG, MISC (``Example.entities``);
* ``phrase``: its IDIOM and PHRASE spans;
* ``word``: a segmented word outside the entity and phrase units of the levels in use (the
  basic level over words);
* ``char``: one token (ERNIE's Chinese basic level).

Units of the levels with a positive weight are predicted in a random order, weighted per unit
by its level's weight (equal weights: a uniform shuffle, every unit equally likely), until the
budget is spent; a unit that no longer fits is skipped, never cut, and units never overlap
(with ``char`` and another level both on, a token inside a taken unit is not free).  The
[MASK]/random/keep fate is drawn once per unit.  With ``char`` above 0, words are no longer
always predicted whole (by design).  A weight of 2 for ``entity`` makes each entity twice as
likely to be drawn as each word, and so on.

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
DEFAULT_LEVELS = {"entity": 1.0, "phrase": 1.0, "word": 1.0, "char": 0.0}
OPTIONS = {"knowledge_levels": DEFAULT_LEVELS, "knowledge_stages": None}


def _mix(v, what: str) -> np.ndarray:
    """A level table (level -> weight of each of its units) as weights in LEVELS order, summing to 1."""
    if not isinstance(v, dict) or not v:
        raise ZhmaskError(f"--option {what}: expected a table like {{\"entity\": 1, \"phrase\": 1, "
                          f"\"word\": 1}}, got {v!r}")
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


@register("knowledge", options=OPTIONS, validate=stage_probs,
          traits=("uses_segmentation", "uses_entities", "random_tokens"),
          help="entities, phrases, words (and characters) by level (ERNIE 1.0)")
def make(config, ctx):
    m = Masker(config, ctx)
    stages = stage_probs(config)
    masks = [m.strategy(choose=_chooser(m, p)) for p in stages]
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


def _chooser(m: Masker, weights: np.ndarray):
    """ERNIE 1.0's unit selection: the example is cut into knowledge units (its entities and
    phrases, each whole, then the words outside them, then tokens where the char level is on),
    and units are predicted in a random order, weighted per unit by its level's weight, until
    the budget is spent (a unit that no longer fits is skipped, never cut).  With equal weights
    every unit is equally likely: an entity is masked at the rate of a word."""
    use = weights > 0
    char_overlaps = bool(use[3] and use[:3].any())  # tokens lie inside the other units

    def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
        n = len(ids)
        ccand = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(~cand, out=ccand[1:])
        covered = np.zeros(n + 1, dtype=np.int64)
        u_s: list[np.ndarray] = []
        u_e: list[np.ndarray] = []
        u_lv: list[np.ndarray] = []
        u_type: list[str] = []  # the entity or phrase type of the first units (levels 0 and 1)
        for li, types in ((0, ENTITY_TYPES), (1, PHRASE_TYPES)):
            sp = [(s, e, t) for s, e, t in example.entities if t in types and 0 <= s < e <= n]
            s = np.asarray([x[0] for x in sp], dtype=np.int64)
            e = np.asarray([x[1] for x in sp], dtype=np.int64)
            ok = (ccand[e] - ccand[s]) == 0 if len(s) else np.zeros(0, dtype=bool)
            stats[f"knowledge_{LEVELS[li]}_units_available"] += int(ok.sum())
            if use[li] and ok.any():
                u_s.append(s[ok])
                u_e.append(e[ok])
                u_lv.append(np.full(int(ok.sum()), li, dtype=np.int64))
                u_type += [x[2] for x, k in zip(sp, ok.tolist()) if k]
                for a, b in zip(s[ok].tolist(), e[ok].tolist()):
                    covered[a + 1:b + 1] = 1
        if use[2]:
            wt = m.word_table(example, wid, cand)
            ws, we = wt.start[wt.ok], wt.end[wt.ok]
            if u_s:  # the words outside the entities and phrases
                cc = np.cumsum(covered)
                free = cc[we] == cc[ws]
                ws, we = ws[free], we[free]
            u_s.append(ws)
            u_e.append(we)
            u_lv.append(np.full(len(ws), 2, dtype=np.int64))
            stats["knowledge_word_units_available"] += len(ws)
        if use[3]:
            cp = np.flatnonzero(cand)
            u_s.append(cp)
            u_e.append(cp + 1)
            u_lv.append(np.full(len(cp), 3, dtype=np.int64))
        us = np.concatenate(u_s) if u_s else np.zeros(0, dtype=np.int64)
        ue = np.concatenate(u_e) if u_e else np.zeros(0, dtype=np.int64)
        lv = np.concatenate(u_lv) if u_lv else np.zeros(0, dtype=np.int64)
        got_s: list[int] = []
        got_e: list[int] = []
        if len(us) and budget > 0:
            # a weighted random order without replacement (Efraimidis-Spirakis keys u ** (1 / w));
            # with equal weights, a uniform shuffle
            keys = np.log(rng.random(len(us))) / weights[lv]
            order = np.argsort(-keys, kind="stable")
            occ = np.zeros(n, dtype=bool) if char_overlaps else None
            r = budget
            for k, a, b, li in zip(order.tolist(), us[order].tolist(), ue[order].tolist(), lv[order].tolist()):
                if b - a > r or (occ is not None and occ[a:b].any()):
                    continue
                if occ is not None:
                    occ[a:b] = True
                got_s.append(a)
                got_e.append(b)
                r -= b - a
                stats[f"knowledge_units_{LEVELS[li]}"] += 1
                if li < 2:
                    stats[f"knowledge_units_{u_type[k]}"] += 1
                if r == 0:
                    break
        return m.apply(ids, np.asarray(got_s, dtype=np.int64), np.asarray(got_e, dtype=np.int64), rng, stats,
                       n_cand, budget)

    return choose


@STRATEGIES.add_check("knowledge")
def check_knowledge_row(row: dict, ctx: dict) -> list[str]:
    """A row of a stage without the char level (``row_levels``) predicts words whole or not at all."""
    from zhmask.masking.checks import masked_arrays, partly_predicted

    arrays = masked_arrays(row)
    if arrays is None:
        return []
    _, lab, wid = arrays
    levels = row_levels(ctx.get("config") or {}, row.get("example_id", ""))  # the row's stage under knowledge_stages
    if float(levels.get("char", 0) or 0) <= 0 and partly_predicted(wid, lab != -100):
        return ["--masking knowledge: a word is only partly predicted"]
    return []

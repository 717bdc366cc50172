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
from zhmask.masking.units import Masker, ranges_to_positions
from zhmask.rng import random_rows

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
    weights = np.stack(stage_probs(config))  # (stages, levels)
    return m.strategy(choose_rows=_chooser(m, weights, config.dupe_factor), per_copy=len(weights) > 1)


_LEVEL_OF_TYPE = {**{t: 0 for t in ENTITY_TYPES}, **{t: 1 for t in PHRASE_TYPES}}
_TYPES = ENTITY_TYPES + PHRASE_TYPES


def _chooser(m: Masker, weights: np.ndarray, dupe_factor: int):
    """ERNIE 1.0's unit selection for a batch of rows (``weights``: each stage's level weights;
    a row's stage comes from its copy, :func:`stage_of`).  Each row is cut into knowledge units
    (its entities and phrases, each whole, then the words outside them, then tokens where the
    char level is on), and a row's units are predicted in a random order, weighted per unit by
    its level's weight, until the budget is spent (a unit that no longer fits is skipped, never
    cut).  With equal weights every unit is equally likely: an entity is masked at the rate of a
    word.  The order is a weighted shuffle without replacement (Efraimidis-Spirakis keys
    ``u ** (1 / w)``, one value per unit; a uniform shuffle for equal weights)."""
    n_stages = len(weights)

    def choose_rows(rb, gens, stats):
        n = len(rb)
        stage = np.zeros(n, dtype=np.int64)
        if n_stages > 1:
            stage = np.minimum(rb.copies * n_stages // max(int(dupe_factor), 1), n_stages - 1)
            for s_, c in enumerate(np.bincount(stage, minlength=n_stages).tolist()):
                if c:
                    stats[f"knowledge_stage{s_}_rows"] += c
        live = ~rb.gen  # rows in the ERNIE-GEN layout are not masked
        use = (weights[stage] > 0) & live[:, None]  # (rows, levels)
        starts = rb.starts
        notc = np.zeros(len(rb.ids) + 1, dtype=np.int64)
        np.cumsum(~rb.cand, out=notc[1:])
        # entity and phrase spans (in each row: its entities, then its phrases, each in order)
        er: list[int] = []
        es: list[int] = []
        ee: list[int] = []
        elv: list[int] = []
        et: list[int] = []
        for i, (ex, L, off) in enumerate(zip(rb.exs, rb.lens.tolist(), starts.tolist())):
            if not ex.entities or not live[i]:
                continue
            for li in (0, 1):
                for a, b, t in ex.entities:
                    if _LEVEL_OF_TYPE.get(t) == li and 0 <= a < b <= L:
                        er.append(i)
                        es.append(off + a)
                        ee.append(off + b)
                        elv.append(li)
                        et.append(_TYPES.index(t))
        er_, es_, ee_, elv_, et_ = (np.asarray(x, dtype=np.int64) for x in (er, es, ee, elv, et))
        ok = notc[ee_] == notc[es_]  # every token a candidate
        if live.any():
            for li in (0, 1):
                stats[f"knowledge_{LEVELS[li]}_units_available"] += int((ok & (elv_ == li)).sum())
        sel = ok & use[er_, elv_]
        parts = [(er_[sel], es_[sel], ee_[sel], elv_[sel], et_[sel])]
        # words outside the entities and phrases in use
        if use[:, 2].any():
            wsel = rb.ok & use[rb.wrow, 2]
            ws, we, wr = rb.ws[wsel], rb.we[wsel], rb.wrow[wsel]
            if sel.any():
                cov = np.zeros(len(rb.ids) + 1, dtype=np.int64)
                cov[ranges_to_positions(es_[sel], ee_[sel]) + 1] = 1
                np.cumsum(cov, out=cov)
                free = cov[we] == cov[ws]
                ws, we, wr = ws[free], we[free], wr[free]
            parts.append((wr, ws, we, np.full(len(ws), 2), np.full(len(ws), -1)))
            stats["knowledge_word_units_available"] += len(ws)
        if use[:, 3].any():  # one token each
            trow = np.repeat(np.arange(n), rb.lens)
            cp = np.flatnonzero(rb.cand & use[trow, 3])
            parts.append((trow[cp], cp, cp + 1, np.full(len(cp), 3), np.full(len(cp), -1)))
        ur, us, ue, ulv, utp = (np.concatenate(x).astype(np.int64) for x in zip(*parts))
        keep = rb.budget[ur] > 0
        if not keep.all():
            ur, us, ue, ulv, utp = ur[keep], us[keep], ue[keep], ulv[keep], utp[keep]
        o = np.argsort(ur, kind="stable")  # each row's units: entities, phrases, words, characters
        ur, us, ue, ulv, utp = ur[o], us[o], ue[o], ulv[o], utp[o]
        counts = np.bincount(ur, minlength=n)
        with np.errstate(divide="ignore"):
            keys = np.log(random_rows(gens, counts)) / weights[stage[ur], ulv]
        o = np.lexsort((-keys, ur))  # each row's units in their random scanning order
        ur, us, ue, ulv, utp = ur[o], us[o], ue[o], ulv[o], utp[o]
        taken, _ = m.take_rows(rb, counts, ue - us)
        # rows where character units lie inside the other units: a unit is skipped once one of
        # its tokens is taken (row by row; only with the char level and another one both on)
        overlap = np.flatnonzero(use[:, 3] & use[:, :3].any(axis=1) & (counts > 0))
        if len(overlap):
            off = np.cumsum(counts) - counts
            for r in overlap.tolist():
                occ: set[int] = set()
                left = int(rb.budget[r])
                for j in range(int(off[r]), int(off[r] + counts[r])):
                    a, b = int(us[j]), int(ue[j])
                    taken[j] = left > 0 and b - a <= left and occ.isdisjoint(range(a, b))
                    if taken[j]:
                        occ.update(range(a, b))
                        left -= b - a
        ur, us, ue, ulv, utp = ur[taken], us[taken], ue[taken], ulv[taken], utp[taken]
        _count_units(stats, "knowledge_units_", ulv, utp)
        if n_stages > 1:
            for s_ in sorted(set(stage[ur].tolist())):
                at = stage[ur] == s_
                _count_units(stats, f"knowledge_stage{s_}_units_", ulv[at], utp[at])
        o = np.argsort(us, kind="stable")
        return us[o], ue[o]

    return choose_rows


def _count_units(stats, prefix: str, lv: np.ndarray, tp: np.ndarray) -> None:
    """Units taken per level and per entity or phrase type."""
    for li, c in enumerate(np.bincount(lv, minlength=len(LEVELS)).tolist()):
        if c:
            stats[prefix + LEVELS[li]] += c
    for k, c in enumerate(np.bincount(tp[tp >= 0], minlength=len(_TYPES)).tolist()):
        if c:
            stats[prefix + _TYPES[k]] += c


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

"""What every masking strategy shares: candidates, the budget, units, and the per-unit fate.

A strategy only decides *which units* to predict (a unit is a token range: one token, one
word, an n-gram of words, an entity); everything else is here and identical for all of them:

* candidates: tokens with a word (``word_ids >= 0``) whose id is not a special token;
  a unit is eligible only when all its tokens are candidates;
* the budget: ``min(max_predictions_per_seq, max(1, round(n * masked_lm_prob)))`` tokens,
  where ``n`` is the number of candidate tokens (BERT counts [CLS]/[SEP] too; see
  docs/masking.md); a unit that would exceed what is left of the budget is skipped, never cut;
* the fate of a unit ([MASK] / random token / unchanged, ``config.mask_ratios``) is drawn
  once per unit and applies to all its tokens; random tokens come from
  ``tok.replaceable_ids`` (never special or ``[unused]`` tokens);
* ``labels`` hold the original id at predicted positions and -100 elsewhere.

Everything is per example with numpy; the only Python loops run once per *unit*.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from zhmask.masking.base import MaskResult
from zhmask.record import Example

MASK, RANDOM, KEEP = 0, 1, 2
FATES = ("mask", "random", "keep")


@dataclass
class WordTable:
    """The example's words as token ranges (``start[k]``, ``end[k]``) in order."""

    start: np.ndarray
    end: np.ndarray
    ok: np.ndarray  # every token of the word is a candidate
    joined: np.ndarray  # len W-1: word k+1 starts where word k ends (no special token between)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def ntok(self) -> np.ndarray:
        return self.end - self.start


def is_generation(ex: Example) -> bool:
    """Rows in the ERNIE-GEN / seq2seq layout (target fragments after the source) are not masked."""
    return ex.extra.get("source_ids") is not None


def candidates(ids: np.ndarray, wid: np.ndarray, special_ids: np.ndarray) -> np.ndarray:
    return (wid >= 0) & ~np.isin(ids, special_ids)


def _word_bounds(wid: np.ndarray, cand: np.ndarray, breaks: np.ndarray | None = None):
    """(starts, ends, ok, joined) of the words of ``wid``: [start, end) token ranges of equal
    word ids >= 0, ``ok`` where every token of the word is a candidate, ``joined`` where a word
    ends where the next starts.  ``breaks``: extra positions where a word must end (the starts
    of the examples of a concatenated batch)."""
    n = len(wid)
    w = wid >= 0
    d = np.empty(n + 1, dtype=bool)  # d[i]: a word boundary before token i
    d[0] = d[n] = True
    np.not_equal(wid[1:], wid[:-1], out=d[1:n])
    if breaks is not None:
        d[breaks] = True
    starts = np.flatnonzero(d[:n] & w)
    ends = np.flatnonzero(d[1:] & w) + 1
    bad = w & ~cand
    if bad.any():
        cb = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(bad, out=cb[1:])
        ok = (cb[ends] - cb[starts]) == 0
    else:
        ok = np.ones(len(starts), dtype=bool)
    return starts, ends, ok, ends[:-1] == starts[1:]


def word_table(wid: np.ndarray, cand: np.ndarray) -> WordTable:
    if len(wid) == 0:
        e = np.zeros(0, dtype=np.int64)
        return WordTable(e, e, np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    return WordTable(*_word_bounds(wid, cand))


def ranges_to_positions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, e)`` for every range, without a Python loop."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.cumsum(lens) - lens
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offs, lens)


def take_in_order(lengths: np.ndarray, budget: int) -> tuple[np.ndarray, int]:
    """Indices of the units taken when scanning ``lengths`` in order, skipping (not cutting) a
    unit that would exceed the remaining budget, until the budget is spent (BERT's loop);
    returns (taken indices, units skipped)."""
    if budget <= 0 or len(lengths) == 0:
        return np.zeros(0, dtype=np.int64), 0
    # a few dozen units: a plain loop beats the cumsum/searchsorted/flatnonzero version
    lens = lengths.tolist()
    n = len(lens)
    taken: list[int] = []
    r = budget
    j = 0
    while j < n and lens[j] <= r:  # the prefix that fits whole (zero-length units included)
        taken.append(j)
        r -= lens[j]
        j += 1
    skipped = 0
    while r > 0 and j < n:  # then each unit that still fits; the others are skipped
        if lens[j] <= r:
            taken.append(j)
            r -= lens[j]
        else:
            skipped += 1
        j += 1
    return np.asarray(taken, dtype=np.int64), skipped


def geometric_probs(p: float, max_len: int) -> np.ndarray:
    """SpanBERT's length distribution: Geo(p) on 1..max_len, renormalised after clipping."""
    n = np.arange(1, max_len + 1)
    q = p * (1 - p) ** (n - 1)
    return q / q.sum()


def sample_word_ngrams(wt: WordTable, probs: np.ndarray, budget: int, rng: np.random.Generator,
                       stats: Counter, prefix: str = "ngram") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping units of n consecutive words, selected one after another.

    Each step draws n from ``probs`` (``probs[i]`` is the probability of n = i + 1), then a
    start uniformly among the places where n consecutive free words (eligible, not yet taken,
    not separated by a special token) fit in the remaining budget.  When no place fits, that
    draw is skipped (counted ``<prefix>_skipped_n<k>``) and the next one tried; selection ends
    when the budget is spent or not even one word fits.  Among the places that fit, those that
    spend the remaining budget exactly are preferred, so that the last units of an example are
    not biased towards short n.  Returns (first word, n, unit tokens).
    """
    W = len(wt)
    if W == 0 or budget <= 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    # An example has a few dozen words and a handful of units: each step is a pass over plain
    # lists (about a third of the cost of the dozen numpy calls it replaces); the draws are taken
    # exactly as before (a block of (n, place) pairs, more blocks when exhausted).
    ctok = [0]
    for x in wt.ntok.tolist():
        ctok.append(ctok[-1] + x)
    cbreak = [0] * W  # cbreak[k]: breaks between words < k
    for k, jn in enumerate(wt.joined.tolist(), 1):
        cbreak[k] = cbreak[k - 1] + (not jn)
    free = wt.ok.tolist()
    cum = np.cumsum(probs)
    N = len(probs)
    r = budget
    out_s: list[int] = []
    out_n: list[int] = []
    out_t: list[int] = []
    # pre-drawn: column 0 picks n, column 1 picks the place (more are drawn when exhausted)
    draws = rng.random((4 * budget + 8, 2))
    ns = np.minimum(np.searchsorted(cum, draws[:, 0], side="right") + 1, N).tolist()
    us = draws[:, 1].tolist()
    di = 0
    static: dict[int, tuple[list[int], list[bool]]] = {}
    dead = [False] * (N + 1)  # dead[n]: n words no longer fit (they only get harder)
    dead[0] = True
    live = (probs > 0).tolist()
    while r > 0 and any(live[k] and not dead[k + 1] for k in range(N)):
        if di >= len(ns):
            draws = rng.random((len(ns), 2))
            ns = np.minimum(np.searchsorted(cum, draws[:, 0], side="right") + 1, N).tolist()
            us = draws[:, 1].tolist()
            di = 0
        n, u = ns[di], us[di]
        di += 1
        if n > W or dead[n]:
            for k in range(n, N + 1):
                dead[k] = True
            stats[f"{prefix}_skipped_n{n}"] += 1
            continue
        st_n = static.get(n)
        if st_n is None:  # per n, once per example: window token counts and no [SEP] inside
            st_n = static[n] = ([ctok[a + n] - ctok[a] for a in range(W - n + 1)],
                                [cbreak[a + n - 1] == cbreak[a] for a in range(W - n + 1)])
        tok_n, joined_n = st_n
        run = 0
        fr = [0] * W  # fr[k]: free words in a row ending at k
        for k in range(W):
            run = run + 1 if free[k] else 0
            fr[k] = run
        places = [a for a in range(W - n + 1) if fr[a + n - 1] >= n and joined_n[a] and tok_n[a] <= r]
        if not places:
            # no free run of n words fits what is left; a longer run never will
            stats[f"{prefix}_skipped_n{n}"] += 1
            for k in range(n, N + 1):
                dead[k] = True
            continue
        exact = [a for a in places if tok_n[a] == r]
        if exact:  # a place that spends the budget exactly is preferred (keeps the tail unbiased)
            places = exact
        st = places[min(int(u * len(places)), len(places) - 1)]
        for k in range(st, st + n):
            free[k] = False
        t = ctok[st + n] - ctok[st]
        r -= t
        out_s.append(st)
        out_n.append(n)
        out_t.append(t)
    return (np.asarray(out_s, dtype=np.int64), np.asarray(out_n, dtype=np.int64), np.asarray(out_t, dtype=np.int64))


class Masker:
    """Candidates, budget and the per-unit fate for one build configuration."""

    def __init__(self, config, ctx, ratios: tuple[float, float, float] | None = None) -> None:
        tok = ctx.tok
        self.tok = tok
        self.mask_id = int(tok.mask_id)
        self.special_ids = np.asarray(tok.special_ids)
        self.special_table = np.zeros(tok.vocab_size + 1, dtype=bool)
        self.special_table[self.special_ids] = True
        self.special_table[-1] = True  # ids outside the vocabulary are never candidates
        self.replaceable = np.asarray(tok.replaceable_ids)
        self.p = float(config.masked_lm_prob)
        self.max_pred = int(config.max_predictions_per_seq)
        ratios = ratios if ratios is not None else config.mask_ratios
        self.cum = np.cumsum(np.asarray(ratios, dtype=float))[:2]
        self._batch: dict[int, tuple] = {}  # id(example) -> (example, ids, wid, cand, word table)

    def budget(self, n_cand: int) -> int:
        if n_cand <= 0 or self.p <= 0:
            return 0
        return int(min(self.max_pred, max(1, int(round(n_cand * self.p))), n_cand))

    def prepare(self, ex: Example) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pre = self._batch.get(id(ex))
        if pre is not None and pre[0] is ex:
            return pre[1], pre[2], pre[3]
        ids = np.asarray(ex.input_ids, dtype=np.int32)
        wid = np.asarray(ex.word_ids, dtype=np.int64)
        try:
            bad = self.special_table[ids]
        except IndexError:  # ids outside the vocabulary: never candidates
            bad = self.special_table[np.clip(ids, -1, len(self.special_table) - 1)]
        return ids, wid, (wid >= 0) & ~bad

    def prepare_batch(self, exs: list[Example]) -> None:
        """:meth:`prepare` and :meth:`word_table` of many examples (a mask batch) at once, over
        their concatenation: a dozen numpy calls for the batch instead of a dozen per example,
        then a few slices each.  The results equal the per-example ones (tests/test_fast_paths.py);
        they are kept until the next call or :meth:`release`."""
        self._batch = {}
        exs = [ex for ex in exs if len(ex.input_ids)]
        if not exs:
            return
        lens = np.array([len(ex.input_ids) for ex in exs], dtype=np.int64)
        ends = np.cumsum(lens)
        starts = ends - lens
        ids = np.concatenate([np.asarray(ex.input_ids, dtype=np.int32) for ex in exs])
        wid = np.concatenate([np.asarray(ex.word_ids, dtype=np.int64) for ex in exs])
        if len(ids) != len(wid) or any(len(ex.word_ids) != n for ex, n in zip(exs, lens.tolist())):
            return  # malformed rows: left to the per-example path (and its error)
        try:
            bad = self.special_table[ids]
        except IndexError:  # ids outside the vocabulary: the per-example path clips them
            return
        cand = (wid >= 0) & ~bad
        ws, we, ok, joined = _word_bounds(wid, cand, breaks=starts)
        k0 = np.searchsorted(ws, starts).tolist()
        k1 = np.searchsorted(ws, ends).tolist()
        batch = self._batch
        for ex, a, b, ka, kb in zip(exs, starts.tolist(), ends.tolist(), k0, k1):
            wt = WordTable(ws[ka:kb] - a, we[ka:kb] - a, ok[ka:kb], joined[ka:max(ka, kb - 1)])
            batch[id(ex)] = (ex, ids[a:b], wid[a:b], cand[a:b], wt)

    def release(self) -> None:
        self._batch = {}

    def word_table(self, ex: Example, wid: np.ndarray, cand: np.ndarray) -> WordTable:
        """``word_table(wid, cand)``, from :meth:`prepare_batch` when it prepared ``ex``."""
        pre = self._batch.get(id(ex))
        if pre is not None and pre[0] is ex:
            return pre[4]
        return word_table(wid, cand)

    def strategy(self, choose):
        """A strategy's ``mask(example, rng)`` from the part that differs between strategies.

        ``choose(example, ids, wid, cand, n_cand, budget, rng, stats) -> MaskResult`` sees an
        ordinary example with its candidates (``cand``: not special, inside a word) and its token
        budget; rows in the ERNIE-GEN / seq2seq layout are returned unmasked and counted."""
        def mask(example: Example, rng: np.random.Generator) -> MaskResult:
            ids, wid, cand = self.prepare(example)
            stats: Counter = Counter()
            if is_generation(example):
                stats["not_masked_generation_layout"] += 1
                return self.unmasked(ids, stats)
            n_cand = int(cand.sum())
            return choose(example, ids, wid, cand, n_cand, self.budget(n_cand), rng, stats)

        mask.prepare_batch = self.prepare_batch  # type: ignore[attr-defined]
        mask.release = self.release  # type: ignore[attr-defined]
        return mask

    def unmasked(self, ids: np.ndarray, stats: Counter | None = None) -> MaskResult:
        return MaskResult(ids.copy(), np.full(len(ids), -100, dtype=np.int32), stats if stats is not None else Counter())

    def fates(self, n_units: int, rng: np.random.Generator) -> np.ndarray:
        return np.searchsorted(self.cum, rng.random(n_units), side="right").astype(np.int8)

    def apply(self, ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, rng: np.random.Generator,
              stats: Counter, n_cand: int, budget: int) -> MaskResult:
        """Predict the units [starts, ends) (any order, non-overlapping) with one fate each."""
        # a few dozen predicted tokens per example: plain lists beat a dozen numpy calls here
        units = sorted(zip(starts.tolist(), ends.tolist()))  # starts are distinct: = a stable argsort
        fate = self.fates(len(units), rng)
        labels = np.full(len(ids), -100, dtype=np.int32)
        out = ids.copy()
        if units:
            pos: list[int] = []
            masked: list[int] = []
            rnd: list[int] = []
            n_units = [0, 0, 0]
            n_toks = [0, 0, 0]
            for (a, b), f in zip(units, fate.tolist()):
                r = range(a, b)
                pos += r
                if f == MASK:
                    masked += r
                elif f == RANDOM:
                    rnd += r
                n_units[f] += 1
                n_toks[f] += b - a
            labels[pos] = ids[pos]
            if masked:
                out[masked] = self.mask_id
            if rnd:
                out[rnd] = self.replaceable[rng.integers(0, len(self.replaceable), size=len(rnd))]
            count_totals(stats, n_cand, budget, len(pos), n_units, n_toks)
        else:
            count_totals(stats, n_cand, budget, 0, None, None)
        return MaskResult(out, labels, stats)


def count_totals(stats: Counter, n_cand: int, budget: int, predicted: int, n_units: list[int] | None,
                 n_toks: list[int] | None, names: tuple[str, str, str] = FATES) -> None:
    """:func:`count_common` from per-fate unit and token counts."""
    stats["examples"] += 1
    stats["candidate_tokens"] += int(n_cand)
    stats["budget_tokens"] += int(budget)
    stats["units"] += sum(n_units) if n_units else 0
    if n_units and sum(n_units):
        stats["predicted_tokens"] += predicted
        for f, name in enumerate(names):
            if n_units[f]:
                stats[f"units_{name}"] += n_units[f]
                stats[f"tokens_{name}"] += n_toks[f]  # type: ignore[index]


def count_common(stats: Counter, n_cand: int, budget: int, fate: np.ndarray, lens: np.ndarray,
                 names: tuple[str, str, str] = FATES) -> None:
    stats["examples"] += 1
    stats["candidate_tokens"] += int(n_cand)
    stats["budget_tokens"] += int(budget)
    stats["units"] += len(lens)
    if len(lens):
        stats["predicted_tokens"] += int(lens.sum())
        units = np.bincount(fate, minlength=3).tolist()
        toks = np.bincount(fate, weights=lens, minlength=3).tolist()
        for f, name in enumerate(names):
            if units[f]:
                stats[f"units_{name}"] += units[f]
                stats[f"tokens_{name}"] += int(toks[f])


# ---------------------------------------------------------------------- chinese_ref
def cjk_token_table(tok) -> np.ndarray:
    """``table[id]``: the token is one CJK ideograph (with or without a ``##`` prefix)."""
    t = getattr(tok, "_zhmask_cjk_table", None)
    if t is None:
        from zhmask.steps.normalize import is_cjk

        t = np.zeros(tok.vocab_size, dtype=bool)
        for i, s in enumerate(tok.id_to_token):
            s = s[2:] if s.startswith("##") else s
            t[i] = len(s) == 1 and is_cjk(ord(s))
        tok._zhmask_cjk_table = t
    return t


def chinese_ref(ids: np.ndarray, wid: np.ndarray, cjk_table: np.ndarray) -> np.ndarray:
    """Positions of tokens that continue a Chinese word, as transformers' ``run_chinese_ref.py``
    writes them: inside a word of two or more tokens that are all CJK characters, every token
    but the first (positions count [CLS], as the reference script's do)."""
    n = len(ids)
    if n < 2:
        return np.zeros(0, dtype=np.int32)
    wid = np.asarray(wid)
    ids = np.asarray(ids)
    try:
        cjk = cjk_table[ids]
    except IndexError:
        cjk = cjk_table[np.clip(ids, 0, len(cjk_table) - 1)]
    w = wid >= 0
    cont = np.zeros(n, dtype=bool)
    np.equal(wid[1:], wid[:-1], out=cont[1:])
    cont &= w
    sel = np.flatnonzero(cont)
    if len(sel) == 0:
        return np.zeros(0, dtype=np.int32)
    non = w & ~cjk  # a word with a non-CJK token (a Latin piece, a digit) is not a Chinese word
    if non.any():
        badw = np.zeros(int(wid.max()) + 1, dtype=bool)
        badw[wid[non]] = True
        sel = sel[~badw[wid[sel]]]
    return sel.astype(np.int32)


def chinese_ref_batch(ids_list, wid_list, cjk_table: np.ndarray) -> list[np.ndarray]:
    """``[chinese_ref(ids, wid, cjk_table) for ids, wid in zip(ids_list, wid_list)]``, computed
    with a dozen numpy calls over the concatenation of all the examples instead of a dozen per
    example (a mask batch of 256 examples).  Word ids are offset per example, so that a word of
    one example never meets a word of another; each example's first token never continues."""
    k = len(ids_list)
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int32)] * k
    keep = [i for i in range(k) if len(ids_list[i]) >= 2]  # shorter ones have no continuation
    if not keep:
        return out
    lens = np.array([len(ids_list[i]) for i in keep], dtype=np.int64)
    ends = np.cumsum(lens)
    starts = ends - lens
    ids = np.concatenate([np.asarray(ids_list[i]) for i in keep])
    wid = np.concatenate([np.asarray(wid_list[i]) for i in keep]).astype(np.int64)
    try:
        cjk = cjk_table[ids]
    except IndexError:  # an id outside the table: the plain version clips it, example by example
        return [chinese_ref(a, b, cjk_table) for a, b in zip(ids_list, wid_list)]
    w = wid >= 0
    cont = np.zeros(len(wid), dtype=bool)
    np.equal(wid[1:], wid[:-1], out=cont[1:])
    cont &= w
    cont[starts] = False
    sel = np.flatnonzero(cont)
    non = w & ~cjk
    if len(sel) and non.any():
        # a word with a non-CJK token is not a Chinese word: its id, offset per example
        top = np.maximum.reduceat(wid, starts) + 1
        np.maximum(top, 0, out=top)
        off = np.cumsum(top) - top
        gw = wid + np.repeat(off, lens)
        badw = np.zeros(int(top.sum()) + 1, dtype=bool)
        badw[gw[non]] = True
        sel = sel[~badw[gw[sel]]]
    cut = np.searchsorted(sel, ends).tolist()
    local = (sel - np.repeat(starts, np.diff(cut, prepend=0))).astype(np.int32)
    a = 0
    for i, b in zip(keep, cut):
        out[i] = local[a:b]
        a = b
    return out

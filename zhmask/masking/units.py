"""What every masking strategy shares: candidates, the budget, units, and the per-unit fate.

A strategy only decides *which units* to predict (a unit is a token range: one token, one
word, an n-gram of words, an entity); everything else is here and identical for all of them:

* candidates: tokens with a word (``word_ids >= 0``) whose id is not a special token;
  a unit is eligible only when all its tokens are candidates;
* the budget: ``min(max_predictions_per_seq, max(1, round(n * masked_lm_prob)))`` tokens,
  where ``n`` is the number of candidate tokens (BERT counts [CLS]/[SEP] too; see
  docs/masking.md); a unit that would exceed what is left of the budget is skipped, never cut;
* the fate of a unit ([MASK] / random token / unchanged, ``config.mask_ratios``) is drawn
  once per unit and applies to all its tokens; random tokens come from the token distribution
  of the row's work unit other than the one replaced (``--random-tokens unigram``, the default:
  :mod:`zhmask.masking.unigram`), from ``tok.replaceable_ids`` (``vocab``; never special or
  ``[unused]`` tokens), or from the row's own tokens (``row``: builds made before unit tables):
  :meth:`Masker.apply_rows`;
* ``labels`` hold the original id at predicted positions and -100 elsewhere.

``wwm``, ``ngram``, ``span``, ``char``, ``knowledge`` and ``mac`` have one implementation, over a batch
of rows (:meth:`Masker.mask_rows`): candidates, budgets, word tables, unit selection where it is
not sequential, the random values (:func:`zhmask.rng.random_rows`), labels, fates, output ids
and statistics run over the batch's concatenation; only the n-gram selection loop (and
knowledge's where character units overlap the others) runs row by row.  One example is a batch
of one, so a row's mask does not depend on the batch it is in (tests/masking/test_units.py), and
tests/oracle.py keeps the plain per-example versions as oracles.  ``mac`` shares ``ngram``'s
selection and replaces the words of its units row by row (``apply_rows`` of its own).
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

import numpy as np

from zhmask.masking.base import MaskResult
from zhmask.masking.unigram import RESOURCE, pick_tokens, replacement_bounds
from zhmask.record import Example
from zhmask.rng import Draws, integers_rows, random_rows

MASK, RANDOM, KEEP = 0, 1, 2
FATES = ("mask", "random", "keep")


def is_generation(ex: Example) -> bool:
    """Rows in the ERNIE-GEN / seq2seq layout (target fragments after the source) are not masked."""
    return ex.extra.get("source_ids") is not None



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


def ranges_to_positions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, e)`` for every range, without a Python loop."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.cumsum(lens) - lens
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offs, lens)


def geometric_probs(p: float, max_len: int) -> np.ndarray:
    """SpanBERT's length distribution: Geo(p) on 1..max_len, renormalised after clipping."""
    n = np.arange(1, max_len + 1)
    q = p * (1 - p) ** (n - 1)
    return q / q.sum()


def _runs(ok: np.ndarray, joined: np.ndarray, row_first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of the maximal runs of eligible words (``ok``) joined to each other (no
    special token between); ``row_first``: words that start an example of a concatenated batch."""
    W = len(ok)
    cont = np.zeros(W, dtype=bool)
    if W > 1:
        np.logical_and(ok[1:], ok[:-1], out=cont[1:])
        cont[1:] &= joined[:W - 1]
    if row_first is not None:
        cont[row_first] = False
    nxt = np.zeros(W, dtype=bool)
    nxt[:-1] = cont[1:]
    return np.flatnonzero(ok & ~cont), np.flatnonzero(ok & ~nxt) + 1


def _walk_ngrams(runs: list, W: int, r: int, ns: list, us: list, di: int, end: int, cum: np.ndarray, N: int,
                 first: int, ctok: list, bound: list, rng: Draws, skipped: Counter, prefix: str,
                 out: list, gap: int = 0) -> None:
    """The selection loop of the n-gram strategies on one example: ``runs`` (mutable list of
    [start, end) word ranges, free and joined), ``ctok`` (tokens before word k), the pre-drawn
    ``ns``/``us`` from index ``di`` to ``end`` (a block of draws, drawn again from ``rng``
    when exhausted); appends (first word, n) pairs to ``out``.  Words are numbered as in
    ``runs`` and ``ctok`` (from 0 for one example, globally in a batch).  ``bound[n - 1]``: at
    least the tokens of any n eligible words (while the budget left is above it, every place
    fits and none is exact: the place is found by counting, without listing them).  ``gap``: the
    words on either side of a taken unit leave the free runs too (``gap=1``: units never touch,
    at least one unpredicted word between two of them, as SpanBERT's spans)."""
    dmin = N + 1  # n >= dmin: n words no longer fit (they only get harder)
    block = end - di
    while r > 0 and first < dmin:
        if di >= end:
            draws = rng.random((block, 2))
            ns = np.minimum(np.searchsorted(cum, draws[:, 0], side="right") + 1, N).tolist()
            us = draws[:, 1].tolist()
            di, end = 0, block
        n = ns[di]
        u = us[di]
        di += 1
        if n > W or n >= dmin:
            if n < dmin:
                dmin = n
            skipped[f"{prefix}_skipped_n{n}"] += 1
            continue
        if r > bound[n - 1]:  # every place of the runs fits, none spends the budget exactly
            cnt = 0
            for s, e in runs:
                if e - s >= n:
                    cnt += e - s - n + 1
            if cnt:
                k = min(int(u * cnt), cnt - 1)
                for i, (s, e) in enumerate(runs):
                    if e - s >= n:
                        if k <= e - s - n:
                            st = s + k
                            runs[i:i + 1] = [x for x in ((s, st - gap), (st + n + gap, e)) if x[0] < x[1]]
                            break
                        k -= e - s - n + 1
                r -= ctok[st + n] - ctok[st]
                out.append((st, n))
                continue
            places = None
        elif n > r:  # every word has a token at least: n words never fit in fewer tokens
            places = None
        else:
            places = [a for s, e in runs for a in range(s, e - n + 1) if ctok[a + n] - ctok[a] <= r]
        if not places:
            # no free run of n words fits what is left; a longer run never will
            skipped[f"{prefix}_skipped_n{n}"] += 1
            dmin = n
            continue
        exact = [a for a in places if ctok[a + n] - ctok[a] == r]
        if exact:  # a place that spends the budget exactly is preferred (keeps the tail unbiased)
            places = exact
        st = places[min(int(u * len(places)), len(places) - 1)]
        for i, (s, e) in enumerate(runs):
            if s <= st < e:
                runs[i:i + 1] = [x for x in ((s, st - gap), (st + n + gap, e)) if x[0] < x[1]]
                break
        r -= ctok[st + n] - ctok[st]
        out.append((st, n))


def sample_rows_ngrams(rb: RowBatch, gens: list, probs: np.ndarray, stats: Counter, prefix: str = "ngram",
                       gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping units of n consecutive words in every row of a batch, selected one after
    another (row i draws from ``gens[i]``).

    Each step draws n from ``probs`` (``probs[i]`` is the probability of n = i + 1), then a
    start uniformly among the places where n consecutive free words (eligible, not yet taken,
    not separated by a special token) fit in the remaining budget.  When no place fits, that
    draw is skipped (counted ``<prefix>_skipped_n<k>``) and the next one tried; selection ends
    when the budget is spent or not even one word fits.  Among the places that fit, those that
    spend the remaining budget exactly are preferred, so that the last units of a row are not
    biased towards short n.  ``gap=1``: the words next to a unit are never taken, so units
    never touch (SpanBERT's spans).  The numpy parts (runs, the first block of draws turned into
    n) run over the whole batch, the selection loop (:func:`_walk_ngrams`) per row;
    tests/oracle.py's ``sample_word_ngrams`` is the one-example version.  Returns (first word, n)
    of every unit, words numbered over the batch, rows in order."""
    n = len(rb)
    W = rb.wn.tolist()
    b = rb.budget.tolist()
    rows = [i for i in range(n) if W[i] and b[i] > 0]
    if not rows:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    cum = np.cumsum(probs)
    N = len(probs)
    blocks = [4 * b[i] + 8 for i in rows]
    draws = random_rows([gens[i] for i in rows], [2 * k for k in blocks]).reshape(-1, 2)
    ns = np.minimum(np.searchsorted(cum, draws[:, 0], side="right") + 1, N).tolist()
    us = draws[:, 1].tolist()
    ctok = [0]
    ctok += np.cumsum(rb.ntok).tolist()
    rs, re_ = _runs(rb.ok, rb.joined, rb.w0[rb.wn > 0])
    rcount = np.bincount(rb.wrow[rs], minlength=n)
    roff = (np.cumsum(rcount) - rcount).tolist()
    rcount = rcount.tolist()
    rs_l, re_l = rs.tolist(), re_.tolist()
    first = _first_live(probs)
    # per row and n, the most tokens of n words of a run (a place): the bound of _walk_ngrams
    Wt = len(rb.ws)
    run_end = np.full(Wt, -1, dtype=np.int64)  # per word, the end of its run (-1: in none)
    run_end[ranges_to_positions(rs, re_)] = np.repeat(re_, re_ - rs)
    C = np.asarray(ctok, dtype=np.int64)
    heads = rb.w0[rb.wn > 0]
    bound = np.full((N, n), -1, dtype=np.int64)
    a_idx = np.arange(Wt)
    for k in range(1, min(N, Wt) + 1):
        t = np.full(Wt, -1, dtype=np.int64)
        m = a_idx[:Wt - k + 1] + k <= run_end[:Wt - k + 1]
        t[:Wt - k + 1] = np.where(m, C[k:] - C[:-k], -1)
        bound[k - 1, rb.wn > 0] = np.maximum.reduceat(t, heads)
    bound = bound.T.tolist()
    out: list = []
    d0 = 0
    for i, k in zip(rows, blocks):
        a = roff[i]
        c = a + rcount[i]
        _walk_ngrams(list(zip(rs_l[a:c], re_l[a:c])), W[i], b[i], ns, us, d0, d0 + k, cum, N, first, ctok, bound[i],
                     gens[i], stats, prefix, out, gap)
        d0 += k
    if not out:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    arr = np.asarray(out, dtype=np.int64)
    return arr[:, 0], arr[:, 1]


def _first_live(probs: np.ndarray) -> int:
    pos = np.flatnonzero(np.asarray(probs) > 0)
    return int(pos[0]) + 1 if len(pos) else len(probs) + 1


class RowBatch:
    """A batch of rows (examples; an example twice for two masked copies) concatenated: token
    arrays (``ids``, ``wid``, ``cand``), per row ``starts``/``ends``/``lens`` in the
    concatenation, ``gen`` (ERNIE-GEN layout: not masked, no candidates), ``n_cand`` and
    ``budget``; the words of all rows (``ws``/``we`` token ranges, ``ok``, ``joined``, never
    across rows), per row its first word ``w0`` and word count ``wn``, per word its row ``wrow``."""

    def __init__(self, exs, lens, starts, ends, ids, wid, cand, gen) -> None:
        self.exs = exs
        self.lens, self.starts, self.ends = lens, starts, ends
        self.ids, self.wid, self.cand, self.gen = ids, wid, cand, gen
        self.ws = self.we = self.ok = self.joined = self.w0 = self.wn = self.wrow = None
        self.n_cand = self.budget = None
        self.copies = None  # per row, its --dupe-factor copy (or dynamic epoch): see Masker.mask_rows

    def __len__(self) -> int:
        return len(self.lens)

    @property
    def ntok(self) -> np.ndarray:
        return self.we - self.ws


@dataclass
class RowsResult:
    """Masked rows of a batch: ``input_ids`` and ``labels`` of the concatenation (row i is
    ``[offs[i], offs[i] + lens[i])``), the statistics of all rows together."""

    input_ids: np.ndarray
    labels: np.ndarray
    lens: np.ndarray
    stats: Counter
    rows: RowBatch


def token_ids(ids, vocab_size: int) -> np.ndarray:
    """``ids`` as int32, or ValueError when they are not integers or lie outside the vocabulary
    (a silent cast or clip would mask the wrong tokens)."""
    a = np.asarray(ids)
    if a.dtype.kind not in "iu":
        raise ValueError(f"token ids of type {a.dtype}, not integers")
    if a.size and (a.min() < 0 or a.max() >= vocab_size):
        bad = int(a[(a < 0) | (a >= vocab_size)][0])
        raise ValueError(f"token id {bad} outside the vocabulary (0..{vocab_size - 1})")
    return a.astype(np.int32, copy=False)


class Masker:
    """Candidates, budget and the per-unit fate for one build configuration."""

    def __init__(self, config, ctx, ratios: tuple[float, float, float] | None = None) -> None:
        tok = ctx.tok
        self.tok = tok
        self.mask_id = int(tok.mask_id)
        self.special_ids = np.asarray(tok.special_ids)
        self.special_table = np.zeros(tok.vocab_size, dtype=bool)  # ids are checked first (token_ids)
        self.special_table[self.special_ids] = True
        # the random branch draws from the unit's unigram table (ctx.resources[unigram.RESOURCE]:
        # the unit being built, or a finished build's tables at load time), the row's own
        # non-special tokens (``row``), or the vocabulary
        self.unigram = config.random_tokens == "unigram"
        self.row_pool = config.random_tokens == "row"
        self._resources = ctx.resources
        self.p = float(config.masked_lm_prob)
        self.max_pred = int(config.max_predictions_per_seq)
        ratios = ratios if ratios is not None else config.mask_ratios
        self.cum = np.cumsum(np.asarray(ratios, dtype=float))[:2]

    @functools.cached_property
    def replaceable(self) -> np.ndarray:
        """The ids ``--random-tokens vocab`` draws from (the tokenizer makes them on first use)."""
        return np.asarray(self.tok.replaceable_ids)

    def strategy(self, choose_rows, per_copy: bool = False, apply_rows=None):
        """A strategy's ``mask(example, rng)`` from the part that differs between strategies.

        ``choose_rows(rows, gens, stats) -> (starts, ends)`` picks the units of a batch of rows
        at once (:class:`RowBatch`, one :class:`~zhmask.rng.Draws` per row): token ranges in
        concatenation positions, ascending.  ``apply_rows(rows, gens, starts, ends, stats) ->
        (input_ids, labels)`` turns them into the masked rows (default :meth:`apply_rows`; ``mac``
        replaces words instead).  They are the strategy's only implementation:
        ``mask.mask_rows(examples, gens, copies=None)`` masks a batch (:class:`RowsResult`), and
        ``mask(example, rng, copy=0)`` is the batch of that one example.  ``per_copy``: the
        strategy reads each row's copy (``rows.copies``; ``knowledge``'s stages), so callers pass
        it (:func:`~zhmask.masking.base.call_mask`).  Rows in the ERNIE-GEN / seq2seq layout have
        no candidates: they stay unmasked and are counted."""
        def one(example: Example, rng: Draws, copy: int = 0) -> MaskResult:
            res = self.mask_rows([example], [rng], choose_rows, [copy], apply_rows)
            return MaskResult(res.input_ids, res.labels, res.stats)

        one.mask_rows = (lambda exs, gens, copies=None:  # type: ignore[attr-defined]
                         self.mask_rows(exs, gens, choose_rows, copies, apply_rows))
        one.per_copy = per_copy  # type: ignore[attr-defined]
        return one

    # ------------------------------------------------------------------ a batch of rows at once
    def row_batch(self, exs: list[Example]) -> "RowBatch":
        """The concatenation of ``exs`` with candidates, budgets and word tables.  Raises
        ValueError on a malformed row (ids and word ids of different lengths, ids that are not
        integers or lie outside the vocabulary): the caller bisects down to the row."""
        n = len(exs)
        id_l = [ex.input_ids for ex in exs]
        wid_l = [ex.word_ids for ex in exs]
        lens = np.fromiter(map(len, id_l), dtype=np.int64, count=n)
        if not np.array_equal(lens, np.fromiter(map(len, wid_l), dtype=np.int64, count=n)):
            raise ValueError("input_ids and word_ids of different lengths")
        ends = np.cumsum(lens)
        starts = ends - lens
        total = int(ends[-1]) if n else 0
        if total:
            ids = token_ids(np.concatenate(id_l), self.tok.vocab_size)
            rwid = np.concatenate(wid_l)
            if rwid.dtype.kind not in "iu":
                raise ValueError(f"word_ids of type {rwid.dtype}, not integers")
            wid = rwid.astype(np.int64)
        else:
            ids = np.zeros(0, dtype=np.int32)
            wid = np.zeros(0, dtype=np.int64)
        gen = np.fromiter((is_generation(ex) for ex in exs), dtype=bool, count=n)
        cand = (wid >= 0) & ~self.special_table[ids]
        if gen.any():  # never masked: no candidates
            cand &= ~np.repeat(gen, lens)
        rb = RowBatch(exs, lens, starts, ends, ids, wid, cand, gen)
        nz = starts[lens > 0]
        if total:
            ws, we, ok, joined = _word_bounds(wid, cand, breaks=nz)
        else:
            ws = we = np.zeros(0, dtype=np.int64)
            ok = joined = np.zeros(0, dtype=bool)
        rb.ws, rb.we, rb.ok, rb.joined = ws, we, ok, joined
        rb.w0 = np.searchsorted(ws, starts)  # first word of each row
        rb.wn = np.searchsorted(ws, ends) - rb.w0  # words of each row
        rb.wrow = np.repeat(np.arange(n), rb.wn)
        cs = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(cand, out=cs[1:])
        rb.n_cand = cs[ends] - cs[starts]
        nc = rb.n_cand
        if self.p <= 0:
            rb.budget = np.zeros(n, dtype=np.int64)
        else:
            b = np.maximum(1, np.rint(nc * self.p)).astype(np.int64)
            np.minimum(b, self.max_pred, out=b)
            np.minimum(b, nc, out=b)
            b[nc <= 0] = 0
            rb.budget = b
        return rb

    def mask_rows(self, exs: list[Example], gens: list, choose_rows, copies=None, apply_rows=None) -> "RowsResult":
        """The masked rows of ``exs`` (row i drawn from ``gens[i]``; ``copies[i]``: its
        ``--dupe-factor`` copy or dynamic epoch, for strategies that stage by copy), all at once
        (ValueError on a malformed row: see :meth:`row_batch`)."""
        rb = self.row_batch(exs)
        rb.copies = (np.zeros(len(exs), dtype=np.int64) if copies is None
                     else np.asarray(copies, dtype=np.int64).reshape(len(exs)))
        stats: Counter = Counter()
        us, ue = choose_rows(rb, gens, stats)
        # a choose_rows that takes only 64-bit draws (random floats) says so: no state to read
        out, labels = (apply_rows or self.apply_rows)(rb, gens, us, ue, stats)
        return RowsResult(out, labels, rb.lens, stats, rb)

    def fates_rows(self, rb: "RowBatch", gens: list, us: np.ndarray, ue: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row of each unit, its fate, the labels of the concatenation) for the units [us, ue)
        (ascending): one fate per unit from ``--mask-ratios``, drawn from its row's values
        (``rng.random(k)`` per row), and the original id at every predicted position."""
        urow = np.searchsorted(rb.ends, us, side="right")
        fate = np.searchsorted(self.cum, random_rows(gens, np.bincount(urow, minlength=len(rb))),
                               side="right").astype(np.int8)
        labels = np.full(len(rb.ids), -100, dtype=np.int32)
        pos = ranges_to_positions(us, ue)
        labels[pos] = rb.ids[pos]
        return urow, fate, labels

    def apply_rows(self, rb: "RowBatch", gens: list, us: np.ndarray, ue: np.ndarray, stats: Counter):
        """Predict the units [us, ue) of every row (concatenation positions, ascending, so grouped
        by row in start order); per row, one fate per unit (``rng.random(k)``), then the random
        tokens (``rng.integers``) for the units whose fate is a random token: from the unigram
        table of the row's unit other than the token replaced, each as often as the unit's text
        holds it (the original stays where the table holds no other token: ``unigram``), from any
        replaceable vocabulary entry (``vocab``), or the same draw from the row's own
        non-special tokens (``row``).  Returns (input_ids, labels) of the concatenation and adds
        the statistics of every row to ``stats`` (tests/oracle.py's ``apply_one`` is one row's
        plain version)."""
        n = len(rb.lens)
        urow, fate, labels = self.fates_rows(rb, gens, us, ue)
        ids = rb.ids
        out = ids.copy()
        ulen = ue - us
        m = fate == MASK
        if m.any():
            out[ranges_to_positions(us[m], ue[m])] = self.mask_id
        rnd = fate == RANDOM
        if rnd.any():
            per = np.bincount(urow[rnd], weights=ulen[rnd], minlength=n).astype(np.int64).tolist()
            at = ranges_to_positions(us[rnd], ue[rnd])
            if self.unigram:  # one draw over the tables of the rows' units
                tables, which = self.unit_tables([ex.extra.get("unit") for ex in rb.exs])
                d = replacement_bounds(tables, np.repeat(which, per), ids[at])
                out[at] = pick_tokens(d, integers_rows(gens, per, np.maximum(d.high, 1)))
            elif self.row_pool:  # the rows' pools sorted by (row, token)
                V = np.int64(self.tok.vocab_size)
                row = np.repeat(np.arange(n, dtype=np.int64), rb.lens)
                pool = np.sort(row[~self.special_table[ids]] * V + ids[~self.special_table[ids]])
                key = row[at] * V + ids[at]
                lo = np.searchsorted(pool, key, side="left")
                same = np.searchsorted(pool, key, side="right") - lo
                first = np.searchsorted(pool, row[at] * V)
                high = np.searchsorted(pool, (row[at] + 1) * V) - first - same
                v = integers_rows(gens, per, np.maximum(high, 1))
                pick = first + v + np.where(first + v < lo, 0, same)
                out[at] = np.where(high > 0, pool[np.minimum(pick, len(pool) - 1)] - row[at] * V, ids[at])
            else:
                out[at] = self.replaceable[integers_rows(gens, per, len(self.replaceable))]
        self.count_rows(rb, stats, fate, ulen)
        return out, labels

    @staticmethod
    def count_rows(rb: "RowBatch", stats: Counter, fate: np.ndarray, ulen: np.ndarray,
                   names: tuple[str, str, str] = FATES) -> bool:
        """The statistics every strategy keeps for a batch: rows left unmasked in the generation
        layout, then, over the other rows, examples, candidate and budget tokens, and the units
        per fate (:func:`count_units`).  Returns whether the batch holds such other rows."""
        n, g = len(rb), int(rb.gen.sum())
        if g:
            stats["not_masked_generation_layout"] += g
        if g < n:
            stats["examples"] += n - g
            stats["candidate_tokens"] += int(rb.n_cand.sum())
            stats["budget_tokens"] += int(rb.budget.sum())
            count_units(stats, fate, ulen, names)
        return g < n

    def take_rows(self, rb: "RowBatch", counts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BERT's budget loop for every row at once: scanning each row's units in order, a unit
        that would exceed what is left of the budget is skipped (not cut), until the budget is
        spent.  ``lengths`` holds each row's units in scanning order (``counts[i]`` of them for
        row i, rows in order, every length at least 1); returns (mask of the units taken, units
        skipped per row).  (tests/oracle.py's take_in_order is the plain loop.)"""
        n = len(counts)
        budget = rb.budget
        urow = np.repeat(np.arange(n), counts)
        off = np.cumsum(counts) - counts
        cs = np.cumsum(lengths)
        base = np.zeros(n, dtype=np.int64)
        nz = counts > 0
        base[nz] = cs[off[nz]] - lengths[off[nz]]
        within = cs - np.repeat(base, counts)  # tokens of the row's units up to this one
        taken = within <= np.repeat(budget, counts)  # the prefix that fits whole
        p = np.bincount(urow, weights=taken, minlength=n).astype(np.int64)
        r = budget - np.bincount(urow, weights=np.where(taken, lengths, 0), minlength=n).astype(np.int64)
        skipped = np.zeros(n, dtype=np.int64)
        # then, row by row in rounds, the next unit that still fits; the ones passed are skipped
        act = np.flatnonzero((r > 0) & (p < counts))
        if len(act):
            nxt = off + p  # next unit to scan (index into lengths)
            stop = off + counts
            idx = ranges_to_positions(nxt[act], stop[act])
            while len(idx):
                row = urow[idx]
                fits = lengths[idx] <= r[row]
                hits = idx[fits]
                hrow = row[fits]
                first = np.ones(len(hits), dtype=bool)
                first[1:] = hrow[1:] != hrow[:-1]
                hits, hrow = hits[first], hrow[first]
                none = np.setdiff1d(act, hrow, assume_unique=True)  # rows where nothing fits any more
                skipped[none] += stop[none] - nxt[none]
                skipped[hrow] += hits - nxt[hrow]
                taken[hits] = True
                r[hrow] -= lengths[hits]
                nxt[hrow] = hits + 1
                act = hrow[(r[hrow] > 0) & (nxt[hrow] < stop[hrow])]
                keep = np.zeros(n, dtype=bool)
                keep[act] = True
                idx = idx[keep[urow[idx]] & (idx >= nxt[urow[idx]])]
        return taken, skipped

    def unit_tables(self, units: list) -> tuple[list, np.ndarray]:
        """(distinct tables, index of each unit's table) of the units of some rows."""
        src = self._resources.get(RESOURCE)
        if src is None:
            raise ValueError("--random-tokens unigram draws from the unigram table of the row's unit, and none is "
                             "loaded (masking outside a build: DynamicMasking.from_build loads the build's tables)")
        seen: dict = {}
        which = np.fromiter((seen.setdefault(u, len(seen)) for u in units), dtype=np.int64, count=len(units))
        return [src.get(u) for u in seen], which


def count_units(stats: Counter, fate: np.ndarray, lens: np.ndarray, names: tuple[str, str, str] = FATES) -> None:
    """Units, predicted tokens, and units and tokens per fate, of units with fates ``fate`` and
    lengths ``lens`` (of one example or of a whole batch)."""
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
    if t is None:  # from the vocabulary's code points at once (a loop over 21,128 tokens took 10 ms)
        from zhmask.steps.normalize import cjk_mask

        toks = tok.id_to_token
        lens = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
        cps = np.frombuffer("".join(toks).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        start = np.cumsum(lens) - lens
        hashes = np.zeros(len(toks), dtype=bool)  # "##" and one character
        three = np.flatnonzero(lens == 3)
        hashes[three] = (cps[start[three]] == ord("#")) & (cps[start[three] + 1] == ord("#"))
        t = np.zeros(len(toks), dtype=bool)
        one = np.flatnonzero(lens == 1)
        t[one] = cjk_mask(cps[start[one]])
        two = np.flatnonzero(hashes)
        t[two] = cjk_mask(cps[start[two] + 2])
        tok._zhmask_cjk_table = t
    return t


def chinese_ref(ids: np.ndarray, wid: np.ndarray, cjk_table: np.ndarray) -> np.ndarray:
    """Positions of tokens that continue a Chinese word, as transformers' ``run_chinese_ref.py``
    writes them: inside a word of two or more tokens that are all CJK characters, every token
    but the first (positions count [CLS], as the reference script's do)."""
    return chinese_ref_batch([ids], [wid], cjk_table)[0]


def chinese_ref_rows(rb: RowBatch, cjk_table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`chinese_ref` of every row of a batch as one column: (positions, int32, of all rows
    in order; count per row), from the batch's concatenation.  Word ids are offset per row, so
    that a word of one row never meets a word of another; a row's first token never continues;
    ids outside the table are clipped to it."""
    return _chinese_ref_concat(rb.ids, rb.wid, rb.lens, rb.starts, rb.ends, cjk_table)


def _chinese_ref_concat(ids, wid, lens, starts, ends, cjk_table) -> tuple[np.ndarray, np.ndarray]:
    n = len(lens)
    cjk = cjk_table[np.clip(ids, 0, len(cjk_table) - 1)]
    w = wid >= 0
    cont = np.zeros(len(wid), dtype=bool)
    if len(wid) > 1:
        np.equal(wid[1:], wid[:-1], out=cont[1:])
    cont &= w
    cont[starts[lens > 0]] = False  # a row's first token never continues
    sel = np.flatnonzero(cont)
    non = w & ~cjk  # a word with a non-CJK token (a Latin piece, a digit) is not a Chinese word
    if len(sel) and non.any():
        # the words with a non-CJK token: word ids offset per row
        top = np.zeros(n, dtype=np.int64)
        nz = lens > 0
        top[nz] = np.maximum.reduceat(wid, starts[nz]) + 1
        np.maximum(top, 0, out=top)
        off = np.cumsum(top) - top
        gw = wid + np.repeat(off, lens)
        badw = np.zeros(int(top.sum()) + 1, dtype=bool)
        badw[gw[non]] = True
        sel = sel[~badw[gw[sel]]]
    row = np.searchsorted(ends, sel, side="right")
    return (sel - starts[row]).astype(np.int32), np.bincount(row, minlength=n)


def chinese_ref_batch(ids_list, wid_list, cjk_table: np.ndarray) -> list[np.ndarray]:
    """``[chinese_ref(ids, wid, cjk_table) for ids, wid in zip(ids_list, wid_list)]``, over the
    examples' concatenation (:func:`chinese_ref_rows`' computation)."""
    k = len(ids_list)
    lens = np.fromiter(map(len, ids_list), dtype=np.int64, count=k)
    ends = np.cumsum(lens)
    starts = ends - lens
    if int(lens.sum()) == 0:
        return [np.zeros(0, dtype=np.int32) for _ in range(k)]
    ids = np.concatenate([np.asarray(x) for x in ids_list])
    wid = np.concatenate([np.asarray(x) for x in wid_list]).astype(np.int64)
    pos, counts = _chinese_ref_concat(ids, wid, lens, starts, ends, cjk_table)
    return np.split(pos, np.cumsum(counts)[:-1]) if k else []

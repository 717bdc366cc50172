"""Per-document reference implementations that the package's unit-level code is tested against.

The package runs every stage over a whole work unit at once (a single document is a unit of
one); these functions do the same work one document at a time, the plain way, and exist only
as oracles for tests: the package never calls them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from zhmask.labels.pairs import Ranges, Segment, UnitDocs, balanced_classes, segments_example, truncate_pair
from zhmask.masking.base import MaskResult
from zhmask.masking.knowledge import ENTITY_TYPES, LEVELS, PHRASE_TYPES
from zhmask.masking.unigram import pick_tokens, replacement_bounds
from zhmask.masking.units import FATES, MASK, RANDOM, _first_live, _runs, _walk_ngrams, _word_bounds, count_units
from zhmask.record import Document, Example, Words
from zhmask.rng import Draws
from zhmask.steps.pack import build_example, pack_ranges, sentence_token_ranges
from zhmask.steps.read import RawDoc
from zhmask.steps.sentences import _END
from zhmask.steps.tokenize import _ALIGN_WORTH, run_regex


def reference_document(pipe, raw: RawDoc, events: Counter | None = None) -> tuple[Document | None, str | None]:
    """What ``pipe.document(raw, events)`` gives: normalise, then sentences, words (cut at
    sentence ends, merged for the tokenizer), entities and tokens of the text alone."""
    doc, reason = pipe._start(raw)
    if doc is None:
        return None, reason
    text = doc.text
    doc.sentences = split_sentences(text)
    words = pipe.segmenter.segment(text)
    words, cuts = split_at_sentences(words, doc.sentences)
    words, merges = align(pipe.tok, text, words)
    doc.words = words
    doc.entities = pipe.entities.detect(text, words)
    doc.tokens = pipe.tok.tokenize(text, words)
    if events is not None:
        if cuts:
            events["word_cut_at_sentence_end"] += cuts
        if merges:
            events["words_merged_for_tokenizer"] += merges
    if len(doc.tokens) == 0:
        return None, "no_tokens"
    return doc, None


def reference_documents(pipe, raws: list[RawDoc]):
    """``pipe.documents_or_crash(raws)``, document by document: (documents, events, [UNK] flags)."""
    events: Counter = Counter()
    out = [reference_document(pipe, raw, events) for raw in raws]
    return out, events, [None] * len(out)


def split_sentences(text: str) -> np.ndarray:
    """(n, 2) int32 array of [start, end) spans; empty text gives shape (0, 2)."""
    if not text:
        return np.zeros((0, 2), dtype=np.int32)
    ends = []
    for m in _END.finditer(text):
        q = text.find('"', m.start(), m.end())
        # an ASCII " after the end that opens a quote (even count before it) starts the next sentence
        ends.append(q if q >= 0 and text.count('"', 0, q) % 2 == 0 else m.end())
    bounds = [0]
    for e in ends:
        if e > bounds[-1] and e < len(text):
            bounds.append(e)
    bounds.append(len(text))
    spans = np.array(list(zip(bounds[:-1], bounds[1:])), dtype=np.int32)
    return spans


def sentence_texts(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text).tolist()]


def split_at_sentences(words: Words, sentences: np.ndarray) -> tuple[Words, int]:
    """Cut any word that crosses a sentence boundary; returns (words, number of cuts)."""
    if len(sentences) <= 1 or len(words) == 0:
        return words, 0
    bounds = sentences[1:, 0]
    # a boundary b is crossed by word i when start_i < b < end_i
    idx = np.searchsorted(words.starts, bounds, side="left")  # first word starting at/after b
    crossed = [(int(b), int(i) - 1) for b, i in zip(bounds, idx) if i > 0 and words.ends[i - 1] > b]
    if not crossed:
        return words, 0
    starts = words.starts.tolist()
    ends = words.ends.tolist()
    pos = list(words.pos)
    for b, wi in reversed(crossed):
        s, e, t = starts[wi], ends[wi], pos[wi]
        starts[wi:wi + 1] = [s, b]
        ends[wi:wi + 1] = [b, e]
        pos[wi:wi + 1] = [t, t]
    return Words(np.array(starts, dtype=np.int32), np.array(ends, dtype=np.int32), pos), len(crossed)


def align(tok, text: str, words: Words) -> tuple[Words, int]:
    """``WordTokenizer.align_joined`` of one text: merge words whose boundaries fall inside one
    pre-token run; returns (words, merges)."""
    if len(words) <= 1 or text.isascii() is False and not _ALIGN_WORTH.search(text):
        return words, 0
    rr = tok._run_re or run_regex()
    starts = words.starts
    merges: list[tuple[int, int]] = []
    for m in rr.finditer(text):
        a, b = m.span()
        if b - a < 2:
            continue
        i = int(np.searchsorted(starts, a, side="right")) - 1
        j = int(np.searchsorted(starts, b, side="left"))  # words i..j-1 overlap [a, b)
        if j - i > 1 or (i >= 0 and (starts[i] < a and words.ends[i] > a)):
            if j - i > 1:
                merges.append((i, j))
    if not merges:
        return words, 0
    s_l, e_l, p_l = [], [], []
    prev = 0
    st, en, pos = words.starts.tolist(), words.ends.tolist(), words.pos
    for i, j in merges:
        if i < prev:  # overlapping merge ranges (cannot happen for disjoint runs)
            i = prev
        s_l += st[prev:i]
        e_l += en[prev:i]
        p_l += pos[prev:i]
        s_l.append(st[i])
        e_l.append(en[j - 1])
        p_l.append(pos[i])
        prev = j
    s_l += st[prev:]
    e_l += en[prev:]
    p_l += pos[prev:]
    return Words(np.array(s_l, dtype=np.int32), np.array(e_l, dtype=np.int32), p_l), len(merges)


def two_part_chunks(doc: Document, ctx, task: str) -> list[tuple[Ranges, Ranges]]:
    """Sentences packed as ``mlm`` packs them (for ``[CLS] A [SEP] B [SEP]``), each chunk of two or
    more sentences cut at a random sentence boundary into (A, B); one-sentence chunks are counted
    (``<task>_single_sentence_chunk``) and left out."""
    max_tokens = ctx.config.max_seq_length - 3
    ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
    chunks = pack_ranges(ranges, max_tokens, ctx.config.short_seq_prob, ctx.rng(doc.id, f"{task}_pack"))
    rng = ctx.rng(doc.id, f"{task}_split")
    out = []
    for ch in chunks:
        if len(ch) < 2:
            ctx.events[f"{task}_single_sentence_chunk"] += 1
            continue
        j = int(rng.integers(1, len(ch)))
        out.append((ch[:j], ch[j:]))
    return out


def mlm_each(docs: list[Document], ctx) -> Iterator[Example]:
    """``mlm``'s examples document by document (the oracle of ``mlm.unit_examples``)."""
    max_tokens = ctx.config.max_seq_length - 2
    for doc in docs:
        ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
        chunks = pack_ranges(ranges, max_tokens, ctx.config.short_seq_prob, ctx.rng(doc.id, "pack"))
        for i, chunk in enumerate(chunks):
            yield build_example([(doc, chunk)], cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id, task="mlm",
                                example_id=f"{doc.id}#mlm{i}", ent_cache=ctx.ent_cache)


def nsp_each(docs: list[Document], ctx) -> Iterator[Example]:
    """``nsp``'s examples document by document (the oracle of ``nsp.unit_examples``)."""
    unit = UnitDocs(docs, ctx.config.max_seq_length - 3)
    for i, doc in enumerate(docs):
        chunks = two_part_chunks(doc, ctx, "nsp")
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "nsp_label"))
        rng = ctx.rng(doc.id, "nsp_other")
        n = 0
        for (ra, rb), label in zip(chunks, labels):
            a, b = Segment(doc, ra), Segment(doc, rb)
            if label == 1:
                j = unit.pick_other(i, rng)
                if j is None:
                    ctx.events["nsp_no_other_document"] += 1
                    continue
                b = Segment(docs[j], unit.random_run(j, len(b), rng))
            yield pair_example(a, b, ctx, task="nsp", example_id=f"{doc.id}#nsp{n}", label=label, doc_id=doc.id)
            n += 1


def pair_example(a: Segment, b: Segment, ctx, *, task: str, example_id: str, label: int, doc_id: str) -> Example:
    """``[CLS] A [SEP] B [SEP]`` truncated to ``--max-seq-length``, one example (the oracle of
    ``pairs.pair_examples``)."""
    a, b = truncate_pair(a, b, ctx.config.max_seq_length - 3, ctx.events)
    return segments_example([a, b], ctx, task=task, example_id=example_id, label=label, doc_id=doc_id)


def sop_each(docs: list[Document], ctx) -> Iterator[Example]:
    """``sop``'s examples document by document (the oracle of ``sop.unit_examples``)."""
    for doc in docs:
        chunks = two_part_chunks(doc, ctx, "sop")
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "sop_label"))
        for n, ((ra, rb), label) in enumerate(zip(chunks, labels)):
            a, b = Segment(doc, ra), Segment(doc, rb)
            if label == 1:
                a, b = b, a
            yield pair_example(a, b, ctx, task="sop", example_id=f"{doc.id}#sop{n}", label=label, doc_id=doc.id)


# ---------------------------------------------------------------------- masking, one example at a time
def take_in_order(lengths: np.ndarray, budget: int) -> tuple[np.ndarray, int]:
    """Indices of the units taken when scanning ``lengths`` in order, skipping (not cutting) a
    unit that would exceed the remaining budget, until the budget is spent (BERT's loop);
    returns (taken indices, units skipped)."""
    if budget <= 0 or len(lengths) == 0:
        return np.zeros(0, dtype=np.int64), 0
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


def reference_mask(config, ctx):
    """The strategy ``config.masking`` (``wwm``, ``char``, ``ngram``, ``span``, ``knowledge`` or
    ``mac``) as a function of one example at a time, the way the package decided before its one batched implementation:
    the same units and the same random values, so its rows must equal the package's."""
    from zhmask.masking.span import span_probs
    from zhmask.masking.units import Masker

    m = Masker(config, ctx)
    name = config.masking
    if name == "knowledge":
        return reference_knowledge(m, config)
    if name == "mac":
        return reference_mac(m, config, ctx)

    def wwm(example, ids, wid, cand, n_cand, budget, rng, stats):
        wt = word_table(wid, cand)
        elig = np.flatnonzero(wt.ok)
        order = elig[rng.permutation(len(elig))]
        taken, skipped = take_in_order(wt.ntok[order], budget)
        if skipped:
            stats["units_skipped_over_budget"] += skipped
        sel = order[taken]
        return apply_one(m, ids, wt.start[sel], wt.end[sel], rng, stats, n_cand, budget, example.extra.get("unit"))

    def char(example, ids, wid, cand, n_cand, budget, rng, stats):
        pos = np.flatnonzero(cand)
        chosen = pos[rng.permutation(len(pos))[:budget]]
        return apply_one(m, ids, chosen, chosen + 1, rng, stats, n_cand, budget, example.extra.get("unit"))

    def ngrams(probs, unit_word, gap):
        def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
            wt = word_table(wid, cand)
            sw, nw, _ = sample_word_ngrams(wt, probs, budget, rng, stats, unit_word, gap)
            for n, c in zip(*np.unique(nw, return_counts=True)):
                stats[f"{unit_word}_units_n{int(n)}"] += int(c)
            return apply_one(m, ids, wt.start[sw], wt.end[sw + nw - 1], rng, stats, n_cand, budget,
                             example.extra.get("unit"))
        return choose

    if name == "ngram":
        from zhmask.masking.ngram import ngram_probs

        chooser = ngrams(ngram_probs("ngram", config), "ngram", 0)
    elif name == "span":
        chooser = ngrams(span_probs(config), "span", 1)
    else:
        chooser = {"wwm": wwm, "char": char}[name]
    return one_at_a_time(m, chooser)


# ---------------------------------------------------------------------- one example's units, applied
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


def random_ids(m, ids: np.ndarray, at: np.ndarray, rng, unit=None) -> np.ndarray:
    """Random replacements for positions ``at`` (ascending) of a row whose original tokens
    are ``ids``.  ``--random-tokens unigram``: a token of the unigram table of the row's unit
    (``unit``) other than the one replaced, each as often as the unit's text holds it (the
    original stays where the table holds no other token): one draw per position.  ``vocab``:
    any replaceable vocabulary entry, uniformly.  ``row``: the same draw from the row's own
    non-special tokens (builds made before unit tables)."""
    if m.unigram:
        tables, _ = m.unit_tables([unit])
        d = replacement_bounds(tables, np.zeros(len(at), dtype=np.int64), ids[at])
        return pick_tokens(d, rng.integers(0, np.maximum(d.high, 1)))
    if not m.row_pool:
        return m.replaceable[rng.integers(0, len(m.replaceable), size=len(at))]
    pool = np.sort(ids[~m.special_table[ids]])
    orig = ids[at]
    lo = np.searchsorted(pool, orig, side="left")
    same = np.searchsorted(pool, orig, side="right") - lo
    high = len(pool) - same
    v = rng.integers(0, np.maximum(high, 1))
    pick = v + np.where(v < lo, 0, same)
    return np.where(high > 0, pool[np.minimum(pick, len(pool) - 1)], orig)


def apply_one(m, ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, rng, stats: Counter,
              n_cand: int, budget: int, unit=None) -> MaskResult:
    """Predict the units [starts, ends) (any order, non-overlapping) with one fate each."""
    # a few dozen predicted tokens per example: plain lists beat a dozen numpy calls here
    units = sorted(zip(starts.tolist(), ends.tolist()))  # starts are distinct: = a stable argsort
    fate = np.searchsorted(m.cum, rng.random(len(units)), side="right").astype(np.int8)
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
            out[masked] = m.mask_id
        if rnd:
            out[rnd] = random_ids(m, ids, np.asarray(rnd), rng, unit)
        count_totals(stats, n_cand, budget, len(pos), n_units, n_toks)
    else:
        count_totals(stats, n_cand, budget, 0, None, None)
    return MaskResult(out, labels, stats)


def knowledge_chooser(m, weights: np.ndarray):
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
            wt = word_table(wid, cand)
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
        return apply_one(m, ids, np.asarray(got_s, dtype=np.int64), np.asarray(got_e, dtype=np.int64), rng, stats,
                         n_cand, budget, example.extra.get("unit"))

    return choose


def reference_knowledge(m, config):
    """``knowledge`` one example at a time, as the package masked before its batched path: one
    chooser per stage, the stage picked by the copy, the stage's counters added per example."""
    from zhmask.masking.knowledge import stage_of, stage_probs

    masks = [one_at_a_time(m, knowledge_chooser(m, p)) for p in stage_probs(config)]
    if len(masks) == 1:
        return masks[0]

    def mask(example, rng, copy: int = 0):
        s = stage_of(copy, len(masks), config.dupe_factor)
        res = masks[s](example, rng)
        for key in [k for k in res.stats if k.startswith("knowledge_units_")]:
            res.stats[f"knowledge_stage{s}_{key[len('knowledge_'):]}"] += res.stats[key]
        res.stats[f"knowledge_stage{s}_rows"] += 1
        return res

    mask.per_copy = True
    return mask


# ---------------------------------------------------------------------- one example at a time
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


def word_table(wid: np.ndarray, cand: np.ndarray) -> WordTable:
    if len(wid) == 0:
        e = np.zeros(0, dtype=np.int64)
        return WordTable(e, e, np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    return WordTable(*_word_bounds(wid, cand))


def sample_word_ngrams(wt: WordTable, probs: np.ndarray, budget: int, rng: Draws,
                       stats: Counter, prefix: str = "ngram", gap: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping units of n consecutive words, selected one after another.

    Each step draws n from ``probs`` (``probs[i]`` is the probability of n = i + 1), then a
    start uniformly among the places where n consecutive free words (eligible, not yet taken,
    not separated by a special token) fit in the remaining budget.  When no place fits, that
    draw is skipped (counted ``<prefix>_skipped_n<k>``) and the next one tried; selection ends
    when the budget is spent or not even one word fits.  Among the places that fit, those that
    spend the remaining budget exactly are preferred, so that the last units of an example are
    not biased towards short n.  ``gap=1``: the words next to a unit are never taken, so units
    never touch (SpanBERT's spans).  Returns (first word, n, unit tokens).
    """
    W = len(wt)
    if W == 0 or budget <= 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    # An example has a few dozen words and a handful of units: each step is a pass over plain
    # lists (the places inside the runs of free joined words); the draws are taken exactly as
    # before (a block of (n, place) pairs, more blocks when exhausted).  Masker.mask_rows runs the
    # same loop (_walk_ngrams) for a batch of examples.
    ctok = [0]
    ctok += np.cumsum(wt.ntok).tolist()
    rs, re_ = _runs(wt.ok, wt.joined)
    runs = list(zip(rs.tolist(), re_.tolist()))
    cum = np.cumsum(probs)
    N = len(probs)
    big = np.sort(wt.ntok[wt.ok])[::-1][:N]  # the longest eligible words: a bound on n of them
    bound = np.cumsum(big).tolist() + [-1] * (N - len(big))  # fewer than n eligible words: no place
    draws = rng.random((4 * budget + 8, 2))
    ns = np.minimum(np.searchsorted(cum, draws[:, 0], side="right") + 1, N).tolist()
    us = draws[:, 1].tolist()
    out: list = []
    _walk_ngrams(runs, W, budget, ns, us, 0, len(ns), cum, N, _first_live(probs), ctok, bound, rng, stats, prefix,
                 out, gap)
    if not out:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    sw = np.asarray([x[0] for x in out], dtype=np.int64)
    nw = np.asarray([x[1] for x in out], dtype=np.int64)
    c = np.asarray(ctok, dtype=np.int64)
    return sw, nw, c[sw + nw] - c[sw]


def count_common(stats: Counter, n_cand: int, budget: int, fate: np.ndarray, lens: np.ndarray,
                 names: tuple[str, str, str] = FATES) -> None:
    stats["examples"] += 1
    stats["candidate_tokens"] += int(n_cand)
    stats["budget_tokens"] += int(budget)
    count_units(stats, fate, lens, names)


def one_at_a_time(m, choose):
    """``mask(example, rng)`` from ``choose(example, ids, wid, cand, n_cand, budget, rng, stats)
    -> MaskResult``, which sees one ordinary example with its candidates (``cand``: not special,
    inside a word) and its token budget; rows in the ERNIE-GEN / seq2seq layout are returned
    unmasked and counted (as the package decided before its batched paths)."""
    from zhmask.masking.units import is_generation, token_ids

    def mask(example, rng):
        ids = token_ids(example.input_ids, m.tok.vocab_size)
        wid = np.asarray(example.word_ids, dtype=np.int64)
        if len(wid) != len(ids):
            raise ValueError(f"{len(ids)} input_ids but {len(wid)} word_ids")
        cand = (wid >= 0) & ~m.special_table[ids]
        stats: Counter = Counter()
        if is_generation(example):
            stats["not_masked_generation_layout"] += 1
            return MaskResult(ids.copy(), np.full(len(ids), -100, dtype=np.int32), stats)
        n_cand = int(cand.sum())
        budget = 0 if n_cand <= 0 or m.p <= 0 else int(min(m.max_pred, max(1, int(round(n_cand * m.p))), n_cand))
        return choose(example, ids, wid, cand, n_cand, budget, rng, stats)

    return mask


def reference_mac(m, config, ctx):
    """``mac`` one example at a time, as the package masked before its batched path."""
    from zhmask.masking.ngram import ngram_probs
    from zhmask.masking.similar_word import KEEP, SIMILAR, replacer
    from zhmask.masking.units import ranges_to_positions

    probs = ngram_probs("mac", config)
    replace = replacer(config, ctx)

    def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
        wt = word_table(wid, cand)
        sw, nw, _ = sample_word_ngrams(wt, probs, budget, rng, stats)
        order = np.argsort(sw, kind="stable")
        sw, nw = sw[order], nw[order]
        for n, c in zip(*np.unique(nw, return_counts=True)):
            stats[f"ngram_units_n{int(n)}"] += int(c)
        fate = np.searchsorted(m.cum, rng.random(len(sw)), side="right").astype(np.int8)
        starts, ends = wt.start[sw], wt.end[sw + nw - 1]
        pos = ranges_to_positions(starts, ends)
        labels = np.full(len(ids), -100, dtype=np.int32)
        labels[pos] = ids[pos]
        out = ids.copy()
        for u in np.flatnonzero(fate != KEEP).tolist():
            similar = bool(fate[u] == SIMILAR)
            for k in range(int(sw[u]), int(sw[u] + nw[u])):
                s, e = int(wt.start[k]), int(wt.end[k])
                out[s:e] = replace(ids[s:e], similar, rng, stats)
        stats["mac_words_keep"] += int(nw[fate == KEEP].sum())
        count_common(stats, n_cand, budget, fate, ends - starts, names=("similar", "random", "keep"))
        return MaskResult(out, labels, stats)

    return one_at_a_time(m, choose)


def chinese_ref(ids: np.ndarray, wid: np.ndarray, cjk_table: np.ndarray) -> np.ndarray:
    """``zhmask.masking.units.chinese_ref`` of one example, the plain way: positions of tokens that
    continue a Chinese word, as transformers' ``run_chinese_ref.py`` writes them: inside a word
    of two or more tokens that are all CJK characters, every token but the first (positions
    count [CLS], as the reference script's do); ids outside the table are clipped to it."""
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


def example_rows(pipe, ex: Example, stats: dict, rngs=None, first: int = 0, ref: np.ndarray | None = None):
    """Schema rows for one example, the plain way (what ``Pipeline.masked_block`` gives for a
    batch): ``dupe_factor`` differently masked copies, the masking statistics added to
    ``stats["masking"]``.

    ``rngs`` (prepared by :meth:`mask_keys`) gives copy k the values of key ``first + k``, the
    same as ``rng_for(seed, example_id, "mask", k)``, more cheaply; ``ref`` (from
    :meth:`chinese_refs`) is the example's ``chinese_ref``, computed here when not given."""
    from zhmask.masking.base import call_mask
    from zhmask.pipeline import example_row, label_columns
    from zhmask.rng import rng_for

    cfg = pipe.config
    if ex.extra.get("chinese_ref") is not None:
        ref = None
    elif ref is None:  # whole-word interop column, from the unmasked ids
        ref = chinese_ref(ex.input_ids, ex.word_ids, pipe._cjk_table)
    masking = stats["masking"]
    for k in range(cfg.dupe_factor):
        if rngs is not None:
            rng = rngs.get(first + k)
        else:
            rng = rng_for(cfg.seed, ex.example_id, "mask", k)  # = zhmask.masking.dynamic at epoch k
        res = call_mask(pipe.mask, ex, rng, k)
        for key, n in res.stats.items():
            masking[key] = masking.get(key, 0) + int(n)
        row = example_row(ex, res.input_ids, res.labels)
        row["unit"] = pipe._unit
        if ref is not None:
            row["chinese_ref"] = ref
        for key, (flat, _) in label_columns(pipe.mask, res.labels, [len(res.labels)]).items():
            if row.get(key) is None:  # a task's own column (ERNIE-GEN's span_bounds) is kept
                row[key] = flat
        if cfg.dupe_factor > 1:
            row["example_id"] = f"{ex.example_id}@{k}"
        yield row


# ---------------------------------------------------------------------- rows, one at a time
def _list_array(values: list, typ):
    """list<typ> from a list of numpy arrays / lists / None, built with one concatenate."""
    from zhmask.write.arrays import _cast, _list_of, _np_dtype, prim_array
    if values and all(v is None for v in values):  # a column this task does not fill: all null
        return _list_of(np.zeros(len(values) + 1, dtype=np.int32), prim_array(np.zeros(0), typ),
                        null=np.ones(len(values), dtype=bool))
    valid = [v is not None for v in values]
    lens = np.array([len(v) if v is not None else 0 for v in values], dtype=np.int32)
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    parts = [np.asarray(v) for v in values if v is not None and len(v)]
    np_t = _np_dtype(typ)
    flat = _cast(np.concatenate(parts), np_t) if parts else np.zeros(0, dtype=np_t)
    if all(valid):
        return _list_of(offsets, prim_array(flat, typ))
    return _list_of(offsets, prim_array(flat, typ), null=~np.array(valid, dtype=bool))



def rows_to_batch(rows: list[dict], schema=None):
    """A record batch from row dicts (missing keys are null), one column at a time from the rows
    (``zhmask.write.arrays.blocks_to_batch`` of the same rows as column blocks is the package's)."""
    import pyarrow as pa

    from zhmask.schema import SCHEMA
    from zhmask.write.arrays import _entity_array, _is_entity, _scalar_array, _struct_list_array

    schema = SCHEMA if schema is None else schema
    arrays = []
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_list(f.type) and not pa.types.is_struct(f.type.value_type):
            arrays.append(_list_array(vals, f.type.value_type))
        elif pa.types.is_list(f.type) and _is_entity(f.type.value_type):
            arrays.append(_entity_array(vals, f.type))
        elif pa.types.is_list(f.type):  # list<struct>: dicts, or tuples in the struct's field order
            arrays.append(_struct_list_array(vals, f.type))
        else:
            arrays.append(_scalar_array(vals, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)

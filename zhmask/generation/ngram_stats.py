"""Word n-gram statistics and ERNIE-GEN's span-by-span targets.

ERNIE-GEN cuts each target fragment into spans of one to three words: a bigram or trigram that
is a statistical collocation (a T-test over corpus counts) becomes one span, every other word
is a span of its own.  For an n-gram ``s`` over ``N`` word tokens,

    t(s) = (f(s) - p(s)) / sqrt(f(s) / N),   f(s) = count(s) / N,

where ``p(s)`` is the probability of ``s`` if its parts were independent: for a bigram ``ab``
``p = f(a) f(b)``; for a trigram ``abc`` the larger of ``f(ab) f(c)`` and ``f(a) f(bc)`` (a
trigram counts only when it is more than its best bigram plus a word).  ``t > t_min``
(default 2.576, the 0.5% one-sided level) marks a collocation.  N-grams that hold a
punctuation or whitespace word (POS ``x``/``w``) never count.

Statistics come from a corpus-level span table (:mod:`zhmask.generation.span_table`,
``zhmask span-table``; ``span_stats=table``) or, with ``span_stats=unit``, from the work unit's
own documents (see docs/ernie_gen.md), both counted with :class:`NgramCounter`, whose counters
are capped: when one holds more than ``cap``
distinct keys, every key with the smallest count is dropped, repeatedly, until at most
``cap // 2`` remain.  The pruning depends only on the order documents are added, so it is
deterministic; memory is bounded by ``3 * cap`` keys whatever the unit size.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

SEP = "\x1f"
PUNCT_POS = ("x", "w")


def _prune(c: Counter, cap: int) -> tuple[int, int]:
    """Drop the lowest counts until at most cap // 2 keys remain; returns (keys dropped, the
    highest count dropped)."""
    if len(c) <= cap:
        return 0, 0
    before = len(c)
    target = cap // 2
    low = 0
    while len(c) > target:
        low = min(c.values())
        for k in [k for k, v in c.items() if v == low]:
            del c[k]
    return before - len(c), low


class NgramCounter:
    """Unigram, bigram and trigram counts of word sequences, with a cap on distinct keys."""

    def __init__(self, cap: int = 200_000) -> None:
        self.cap = cap
        self.uni: Counter = Counter()
        self.bi: Counter = Counter()
        self.tri: Counter = Counter()
        self.n = 0
        self.pruned = 0
        self.floor = 0  # the highest count ever dropped: a kept key may have lost at most this much

    def add(self, words: Sequence[str], pos: Sequence[str]) -> None:
        """One run of words (a document); n-grams with punctuation or whitespace are not counted."""
        ok = [p not in PUNCT_POS and w.strip() != "" for w, p in zip(words, pos)]
        self.n += len(words)
        self.uni.update(words)
        self.bi.update(a + SEP + b for a, b, x, y in zip(words, words[1:], ok, ok[1:]) if x and y)
        self.tri.update(a + SEP + b + SEP + c for a, b, c, x, y, z in
                        zip(words, words[1:], words[2:], ok, ok[1:], ok[2:]) if x and y and z)
        for c in (self.uni, self.bi, self.tri):
            dropped, low = _prune(c, self.cap)
            self.pruned += dropped
            self.floor = max(self.floor, low)

    def collocations(self, t_min: float = 2.576) -> tuple[set[str], set[str]]:
        """(significant bigrams, significant trigrams), keys joined with ``SEP``."""
        n = self.n
        if n == 0:
            return set(), set()
        f1 = {w: c / n for w, c in self.uni.items()}
        f2 = {k: c / n for k, c in self.bi.items()}
        bigrams: set[str] = set()
        for k, c in self.bi.items():
            a, b = k.split(SEP)
            if t_stat(c, n, f1.get(a, 0.0) * f1.get(b, 0.0)) > t_min:
                bigrams.add(k)
        trigrams: set[str] = set()
        for k, c in self.tri.items():
            a, b, cc = k.split(SEP)
            p = max(f2.get(a + SEP + b, 0.0) * f1.get(cc, 0.0), f1.get(a, 0.0) * f2.get(b + SEP + cc, 0.0))
            if t_stat(c, n, p) > t_min:
                trigrams.add(k)
        return bigrams, trigrams


def t_stat(count: int, n: int, p_indep: float) -> float:
    """The T statistic of an n-gram seen ``count`` times in ``n`` words (variance f(1-f) ~ f)."""
    f = count / n
    return (f - p_indep) / math.sqrt(f / n)


def split_spans(words: Sequence[str], frags: Iterable[tuple[int, int]],
                colloc: tuple[set[str], set[str]] | None) -> list[tuple[int, int]]:
    """Word ranges of the spans of each fragment, in order, covering every fragment exactly.

    Left to right inside a fragment: a significant trigram is one span, else a significant
    bigram, else one word.  With ``colloc`` None (no statistics) every word is a span.
    """
    spans: list[tuple[int, int]] = []
    bi, tri = colloc if colloc is not None else (set(), set())
    for a, b in frags:
        i = a
        while i < b:
            step = 1
            if colloc is not None:
                if i + 3 <= b and SEP.join(words[i:i + 3]) in tri:
                    step = 3
                elif i + 2 <= b and SEP.join(words[i:i + 2]) in bi:
                    step = 2
            spans.append((i, i + step))
            i += step
    return spans

"""``ngram``: MacBERT's n-gram masking (Cui et al. 2020), without the similar-word step.

Units are 1 to ``ngram_max`` consecutive words (default 4) with probabilities ``ngram_probs``
(default 0.4/0.3/0.2/0.1, MacBERT's), selected one after another so that they never overlap
(:func:`zhmask.masking.units.sample_rows_ngrams`).  An n-gram never spans a [SEP].  The
[MASK]/random/keep fate is drawn once per n-gram.
"""
from __future__ import annotations

import functools

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.masking import STRATEGIES, register
from zhmask.masking.units import Masker, sample_rows_ngrams

NGRAM_OPTIONS = {"ngram_max": 4, "ngram_probs": [0.4, 0.3, 0.2, 0.1]}


def ngram_probs(name: str, config) -> np.ndarray:
    """The normalised length distribution (``p[i]`` for n = i + 1) of strategy ``name``."""
    n_max = STRATEGIES.option(name, config, "ngram_max")
    probs = STRATEGIES.option(name, config, "ngram_probs")
    if isinstance(n_max, bool) or not isinstance(n_max, int) or not 1 <= n_max <= 16:
        raise ZhmaskError(f"--option ngram_max: expected an integer in [1, 16], got {n_max!r}")
    if (not isinstance(probs, (list, tuple)) or not probs
            or any(isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0 for p in probs)):
        raise ZhmaskError(f"--option ngram_probs: expected a list of non-negative numbers, got {probs!r}")
    if len(probs) < n_max:
        raise ZhmaskError(f"--option ngram_probs: {len(probs)} probabilities for ngram_max {n_max}; give one per n")
    p = np.asarray(probs[:n_max], dtype=float)
    if p[0] <= 0 or p.sum() <= 0:
        raise ZhmaskError(f"--option ngram_probs: the probability of 1-grams must be positive, got {probs!r}")
    return p / p.sum()


def make_ngram_mask(name: str, config, ctx, probs: np.ndarray, unit_word: str = "ngram", gap: int = 0,
                    apply_rows=None):
    """The strategy that masks n-grams of words with lengths ``probs``; ``gap=1`` keeps one
    unpredicted word between units (see :func:`sample_rows_ngrams`); ``apply_rows(masker,
    rows, gens, starts, ends, stats)``: what becomes of the units (default: [MASK], random
    or kept tokens, :meth:`Masker.apply_rows`)."""
    m = Masker(config, ctx)

    def choose_rows(rb, gens, stats):  # the units of every row (sample_rows_ngrams)
        sw, nw = sample_rows_ngrams(rb, gens, probs, stats, unit_word, gap)
        if len(nw):
            for n, c in enumerate(np.bincount(nw).tolist()):
                if c:
                    stats[f"{unit_word}_units_n{n}"] += c
        us, ue = rb.ws[sw], rb.we[sw + nw - 1]
        order = np.argsort(us, kind="stable")
        return us[order], ue[order]


    return m.strategy(choose_rows, apply_rows=functools.partial(apply_rows, m) if apply_rows else None)


@register("ngram", options=NGRAM_OPTIONS, validate=lambda cfg: ngram_probs("ngram", cfg),
          traits=("whole_word", "uses_segmentation", "random_tokens"), help="n-grams of whole words")
def make(config, ctx):
    return make_ngram_mask("ngram", config, ctx, ngram_probs("ngram", config))

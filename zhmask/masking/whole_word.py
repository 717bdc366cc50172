"""``wwm``: whole-word masking (Chinese-BERT-wwm, Cui et al. 2019/2021).

The unit is a segmented word: words are visited in a random order and every token of a chosen
word is predicted; a word that would exceed the remaining budget is skipped (not cut), as in
BERT's ``create_pretraining_data.py`` with ``do_whole_word_mask``.  The [MASK]/random/keep
fate is drawn once per word.
"""
from __future__ import annotations


import numpy as np

from zhmask.masking import register
from zhmask.masking.units import Masker, take_in_order, word_table


@register("wwm")
def make(config, ctx):
    m = Masker(config, ctx)

    def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
        wt = m.word_table(example, wid, cand)
        elig = np.flatnonzero(wt.ok)
        order = elig[rng.permutation(len(elig))]
        taken, skipped = take_in_order(wt.ntok[order], budget)
        if skipped:
            stats["units_skipped_over_budget"] += skipped
        sel = order[taken]
        return m.apply(ids, wt.start[sel], wt.end[sel], rng, stats, n_cand, budget)

    return m.strategy(choose)

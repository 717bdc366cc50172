"""``wwm``: whole-word masking (Chinese-BERT-wwm, Cui et al. 2019/2021).

The unit is a segmented word: words are visited in a random order and every token of a chosen
word is predicted; a word that would exceed the remaining budget is skipped (not cut), as in
BERT's ``create_pretraining_data.py`` with ``do_whole_word_mask``.  The [MASK]/random/keep
fate is drawn once per word.
"""
from __future__ import annotations


import numpy as np

from zhmask.masking import register
from zhmask.masking.units import Masker
from zhmask.rng import permutations_rows


@register("wwm", traits=("whole_word", "uses_segmentation", "random_tokens"),
          help="whole words (Chinese-BERT-wwm)")
def make(config, ctx):
    m = Masker(config, ctx)

    def choose_rows(rb, gens, stats):  # each row's words in a random order, taken while they fit
        elig = np.flatnonzero(rb.ok)
        ne = np.bincount(rb.wrow[elig], minlength=len(rb))
        if not len(elig):
            e = np.zeros(0, dtype=np.int64)
            return e, e
        order = elig[np.repeat(np.cumsum(ne) - ne, ne) + permutations_rows(gens, ne)]
        taken, skipped = m.take_rows(rb, ne, rb.ntok[order])
        sk = int(skipped.sum())
        if sk:
            stats["units_skipped_over_budget"] += sk
        sel = np.sort(order[taken])
        return rb.ws[sel], rb.we[sel]

    return m.strategy(choose_rows)

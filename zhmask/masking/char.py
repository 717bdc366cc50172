"""``char``: BERT's token-level masking (Devlin et al. 2019), the unit is one token.

For Chinese text with bert-base-chinese's vocabulary every CJK character is one token, so this
is the original Chinese BERT recipe.  Tokens are drawn uniformly without replacement among the
candidates until the budget is spent.
"""
from __future__ import annotations


import numpy as np

from zhmask.masking import register
from zhmask.masking.units import Masker


@register("char")
def make(config, ctx):
    m = Masker(config, ctx)

    def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
        pos = np.flatnonzero(cand)
        chosen = pos[rng.permutation(len(pos))[:budget]]
        return m.apply(ids, chosen, chosen + 1, rng, stats, n_cand, budget)

    return m.strategy(choose)

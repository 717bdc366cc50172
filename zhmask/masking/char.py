"""``char``: BERT's token-level masking (Devlin et al. 2019), the unit is one token.

For Chinese text with bert-base-chinese's vocabulary every CJK character is one token, so this
is the original Chinese BERT recipe.  Tokens are drawn uniformly without replacement among the
candidates until the budget is spent.
"""
from __future__ import annotations


import numpy as np

from zhmask.masking import register
from zhmask.masking.units import Masker
from zhmask.rng import permutations_rows


@register("char", traits=("random_tokens",), help="single tokens, as BERT")
def make(config, ctx):
    m = Masker(config, ctx)

    def choose_rows(rb, gens, stats):  # each row's candidates in a random order, its budget's first
        pos = np.flatnonzero(rb.cand)
        nc, b = rb.n_cand, rb.budget
        if not len(pos):
            e = np.zeros(0, dtype=np.int64)
            return e, e
        perm = permutations_rows(gens, nc)  # each row's order of its candidates; its first budget taken
        rank = np.arange(len(perm)) - np.repeat(np.cumsum(nc) - nc, nc)
        first = rank < np.repeat(b, nc)
        chosen = np.sort(pos[np.repeat(np.cumsum(nc) - nc, nc)[first] + perm[first]])
        return chosen, chosen + 1

    return m.strategy(choose_rows)

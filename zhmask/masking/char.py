"""``char``: BERT's token-level masking (Devlin et al. 2019), the unit is one token.

For Chinese text with bert-base-chinese's vocabulary every CJK character is one token, so this
is the original Chinese BERT recipe.  Tokens are drawn uniformly without replacement among the
candidates until the budget is spent.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from zhmask.masking import register
from zhmask.masking.units import Masker, is_generation


@register("char")
def make(config, ctx):
    m = Masker(config, ctx)

    def mask(example, rng):
        ids, wid, cand = m.prepare(example)
        stats: Counter = Counter()
        if is_generation(example):
            stats["not_masked_generation_layout"] += 1
            return m.unmasked(ids, stats)
        pos = np.flatnonzero(cand)
        budget = m.budget(len(pos))
        chosen = pos[rng.permutation(len(pos))[:budget]]
        return m.apply(ids, chosen, chosen + 1, rng, stats, len(pos), budget)

    return mask

"""``none``: no masking; labels are all -100 (for trainers that mask dynamically)."""
from __future__ import annotations

import numpy as np

from zhmask.masking import register
from zhmask.masking.base import MaskResult


@register("none", traits=("no_masks",), help="no masks: labels -100, for masking at load time")
def make(config, tok):
    def mask(example, rng):
        return MaskResult(example.input_ids, np.full(len(example.input_ids), -100, dtype=np.int32))
    return mask

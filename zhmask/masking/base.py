"""The one interface every masking strategy implements."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from zhmask.record import Example
from zhmask.rng import Draws


@dataclass
class MaskResult:
    input_ids: np.ndarray  # int32, the corrupted sequence
    labels: np.ndarray  # int32, original id at predicted positions, -100 elsewhere
    stats: Counter = field(default_factory=Counter)


class MaskFn(Protocol):
    def __call__(self, example: Example, rng: Draws) -> MaskResult: ...


def call_mask(fn, example: Example, rng: Draws, copy: int) -> MaskResult:
    """``fn(example, rng)``; a strategy that stages by copy (``fn.per_copy``, e.g. ERNIE's
    ``knowledge_stages``) also gets the ``--dupe-factor`` copy (or the dynamic epoch)."""
    if getattr(fn, "per_copy", False):
        return fn(example, rng, copy=copy)
    return fn(example, rng)

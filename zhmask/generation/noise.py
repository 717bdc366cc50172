"""Noise-aware generation: replace a share of the target's *inputs* by random tokens.

ERNIE-GEN corrupts the target tokens the decoder reads as context (never the labels), so that
the model learns to recover from its own mistakes at generation time.  :func:`noise_target` is
the one function: the build calls it to write noised ``input_ids`` and ``noise_positions`` into
the shard (``noise = "static"``), and a loader calls :func:`dynamic_noise` at load time, which
calls it with a generator seeded by (seed, example id, epoch) (``noise = "dynamic"``).  Epoch 0
of the dynamic path gives exactly the static shard's noise.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from zhmask.rng import Draws, rng_for

STAGE = "ernie_gen_noise"


def noise_target(target: np.ndarray, rate: float, rng: Draws,
                 replace_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(noised copy of ``target``, sorted noised positions).

    The number of positions is ``rate * n`` rounded stochastically (floor plus a Bernoulli draw
    of the fraction), so the expected share is exactly ``rate``; positions are uniform without
    replacement; each replacement is uniform over ``replace_ids`` other than the original token
    (when the original is one of them).
    """
    target = np.asarray(target, dtype=np.int32)
    n = len(target)
    out = target.copy()
    if n == 0 or rate <= 0:
        return out, np.zeros(0, dtype=np.int32)
    x = rate * n
    k = int(np.floor(x))
    if rng.random() < x - k:
        k += 1
    k = min(k, n)
    if k == 0:
        return out, np.zeros(0, dtype=np.int32)
    pos = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int32)
    r = len(replace_ids)
    cand = replace_ids[rng.integers(0, r - 1, size=k)]
    same = cand == target[pos]
    cand[same] = replace_ids[r - 1]
    out[pos] = cand
    return out, pos


def dynamic_noise(row: dict[str, Any], *, seed: int, epoch: int, rate: float,
                  replace_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Load-time noise for one shard row: (input_ids with the target part noised, positions).

    ``row`` needs ``example_id``, ``input_ids``, ``source_ids`` and ``target_ids``; the target
    part of ``input_ids`` starts at ``len(source_ids)``.
    """
    ids = np.array(row["input_ids"], dtype=np.int32)
    target = np.asarray(row["target_ids"], dtype=np.int32)
    off = len(row["source_ids"])
    noised, pos = noise_target(target, rate, rng_for(seed, row["example_id"], STAGE, epoch), replace_ids)
    ids[off:off + len(target)] = noised
    return ids, pos

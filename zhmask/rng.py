"""Per-document random generators.

Every random choice in zhmask takes a generator from :func:`rng_for`, seeded by a stable hash
of (seed, document or example id, stage[, extra]).  Nothing depends on Python's ``hash()``,
on the order documents are processed, or on the number of workers, so shards are
byte-identical however the build is scheduled.
"""
from __future__ import annotations

import hashlib

import numpy as np


def stable_seed(*parts: object) -> int:
    """A 64-bit integer from the parts' text, identical across processes and machines."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "little")


def rng_for(seed: int, doc_id: str, stage: str, *extra: object) -> np.random.Generator:
    """The generator for one (seed, document, stage) triple; ``extra`` adds e.g. an epoch."""
    return np.random.Generator(np.random.PCG64(stable_seed(seed, doc_id, stage, *extra)))

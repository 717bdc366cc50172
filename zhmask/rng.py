"""Counter-based randomness: every random value is a pure function of (seed, key, stage, index).

A *key* is 64 bits hashed from its parts' text (:func:`stable_seed`: blake2b of the seed, a
document or example id, a stage name and any extras such as the masked copy or the epoch).  The
value at *index* ``i`` of a key ``k`` is ``draw(k, i)``: the i-th output of SplitMix64 started at
``k`` (Steele, Lea and Flood 2014; the state after ``i + 1`` steps is ``k + (i + 1) * gamma``, so
any index is computed directly, with no state to carry), as a float in [0, 1) from its top 53
bits.  Nothing depends on Python's ``hash()``, on the order documents are processed or on the
number of workers, so shards are byte-identical however a build is scheduled.

Two ways to take values, with equal results:

* :class:`Draws` walks one key's indices in order (a key and a position, nothing else): the
  code that decides one document or one example at a time (packing, labels) takes
  ``rng.random()``, ``rng.integers(...)``, ``rng.permutation(n)`` from it.
* :func:`random_rows` (and :func:`integers_rows`, :func:`permutations_rows`) take the next values
  of many keys at once, as one array computation over a whole batch: the masking strategies'
  batched path.  Row ``i`` gets exactly what ``rows[i].random(counts[i])`` would, and every
  row's position moves on as if it had.

Version: ``RNG_VERSION`` is part of every build's fingerprint (zhmask.config), so shards drawn
by another scheme are never mixed with these on resume.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

RNG_VERSION = "splitmix64-counter-1"

_GAMMA = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_M64 = (1 << 64) - 1
_TO_UNIT = 2.0 ** -53
_U64 = np.uint64
_NGAMMA, _NC1, _NC2 = _U64(_GAMMA), _U64(_C1), _U64(_C2)
_S30, _S27, _S31, _S11 = _U64(30), _U64(27), _U64(31), _U64(11)
_SMALL = 8  # up to this many values, plain Python integers are cheaper than numpy's calls


def stable_seed(*parts: object) -> int:
    """A 64-bit integer from the parts' text, identical across processes and machines."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "little")


def stable_seeds(keys: list[tuple]) -> list[int]:
    """``[stable_seed(*k) for k in keys]``, with the hash of each key's first part (the seed, the
    same for every key of a build) computed once and copied: about three times cheaper."""
    out: list[int] = []
    heads: dict = {}
    from_bytes = int.from_bytes
    for k in keys:
        if len(k) < 2:
            out.append(stable_seed(*k))
            continue
        head = k[0]
        h0 = heads.get(head)
        if h0 is None:
            h0 = heads[head] = hashlib.blake2b(str(head).encode("utf-8") + b"\x1f", digest_size=8)
        h = h0.copy()
        # the parts' text, each followed by the separator, as stable_seed feeds them
        h.update(("\x1f".join([str(p) for p in k[1:]]) + "\x1f").encode("utf-8"))
        out.append(from_bytes(h.digest(), "little"))
    return out


# ---------------------------------------------------------------------- the function itself
def draw_bits(keys, index) -> np.ndarray:
    """SplitMix64's output ``index`` for each key (uint64 arrays, broadcast against each other)."""
    z = np.asarray(keys, dtype=_U64) + (np.asarray(index, dtype=_U64) + _U64(1)) * _NGAMMA
    z = (z ^ (z >> _S30)) * _NC1
    z = (z ^ (z >> _S27)) * _NC2
    return z ^ (z >> _S31)


def uniform(keys, index) -> np.ndarray:
    """The value at ``index`` of each key, a float64 in [0, 1)."""
    return (draw_bits(keys, index) >> _S11).astype(np.float64) * _TO_UNIT


def _uniform_one(key: int, i: int) -> float:
    """:func:`uniform` for one key and index, in Python integers (no numpy call)."""
    z = (key + (i + 1) * _GAMMA) & _M64
    z = ((z ^ (z >> 30)) * _C1) & _M64
    z = ((z ^ (z >> 27)) * _C2) & _M64
    return ((z ^ (z >> 31)) >> 11) * _TO_UNIT


def _below(u, low, high):
    """``low + floor(u * (high - low))`` as int64, never reaching ``high`` (a float product can
    round up to it)."""
    span = np.asarray(high, dtype=np.int64) - np.asarray(low, dtype=np.int64)
    v = np.floor(u * span).astype(np.int64)
    return np.asarray(low, dtype=np.int64) + np.minimum(v, np.maximum(span - 1, 0))


class Draws:
    """The values of one key in index order: position ``pos`` is the next index to be taken.

    Methods follow the numpy ``Generator`` ones zhmask uses, each value taking the next index:
    ``random`` one per value; ``integers`` one per value (``low + floor(u * (high - low))``, the
    bounds broadcast); ``permutation(n)`` n (the order that sorts them); ``choice`` one per pick
    with replacement or with ``p`` (the inverse of the cumulative ``p``), n without (a
    permutation's first ``size``)."""

    __slots__ = ("key", "pos")

    def __init__(self, key: int, pos: int = 0) -> None:
        self.key = int(key) & _M64
        self.pos = int(pos)

    def __repr__(self) -> str:
        return f"Draws(key={self.key:#018x}, pos={self.pos})"

    def _take(self, n: int) -> np.ndarray:
        i = self.pos
        self.pos = i + n
        if n <= _SMALL:
            k = self.key
            return np.array([_uniform_one(k, j) for j in range(i, i + n)], dtype=np.float64)
        return uniform(_U64(self.key), np.arange(i, i + n, dtype=_U64))

    def random(self, size=None):
        if size is None:
            i = self.pos
            self.pos = i + 1
            return _uniform_one(self.key, i)
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        return self._take(math.prod(shape)).reshape(shape)

    def integers(self, low, high=None, size=None):
        if high is None:
            low, high = 0, low
        if size is None and type(low) is int and type(high) is int:  # one value: no numpy call
            if high <= low:
                raise ValueError(f"integers: high ({high}) must exceed low ({low})")
            i = self.pos
            self.pos = i + 1
            return low + min(int(_uniform_one(self.key, i) * (high - low)), high - low - 1)
        if size is None and np.ndim(low) == 0 and np.ndim(high) == 0:
            return self.integers(int(low), int(high))
        if np.any(np.asarray(high) <= np.asarray(low)):
            raise ValueError("integers: high must exceed low")
        shape = np.broadcast_shapes(np.shape(low), np.shape(high)) if size is None else (
            (size,) if isinstance(size, (int, np.integer)) else tuple(size))
        return _below(self.random(shape), low, high)

    def permutation(self, x):
        if isinstance(x, (int, np.integer)):
            return np.argsort(self._take(int(x)), kind="stable")
        a = np.asarray(x)
        return a[np.argsort(self._take(len(a)), kind="stable")]

    def choice(self, a, size=None, replace: bool = True, p=None):
        n = int(a) if isinstance(a, (int, np.integer)) else len(a)
        if n <= 0:
            raise ValueError("choice: nothing to choose from")
        if p is not None:
            cdf = np.cumsum(np.asarray(p, dtype=np.float64))
            cdf /= cdf[-1]
            u = self.random(size)
            idx = np.minimum(np.searchsorted(cdf, u, side="right"), n - 1)
            idx = int(idx) if size is None else idx.astype(np.int64)
        elif replace:
            idx = self.integers(0, n, size=size)
        else:
            k = 1 if size is None else int(size)
            if k > n:
                raise ValueError(f"choice: {k} picks without replacement from {n}")
            perm = self.permutation(n)
            idx = int(perm[0]) if size is None else perm[:k]
        if isinstance(a, (int, np.integer)):
            return idx
        return np.asarray(a)[idx]


def rng_for(seed: int, doc_id: str, stage: str, *extra: object) -> Draws:
    """The values of one (seed, document or example, stage) key; ``extra`` adds e.g. an epoch."""
    return Draws(stable_seed(seed, doc_id, stage, *extra))


# ---------------------------------------------------------------------- many keys at once
def random_rows(rows: list[Draws], counts) -> np.ndarray:
    """``np.concatenate([r.random(c) for r, c in zip(rows, counts)])``, computed as one array
    operation; each row's position moves on by its count."""
    c = np.asarray(counts, dtype=np.int64)
    total = int(c.sum()) if len(c) else 0
    if total == 0:
        return np.zeros(0, dtype=np.float64)
    keys = np.fromiter((r.key for r in rows), dtype=_U64, count=len(rows))
    pos = np.fromiter((r.pos for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.cumsum(c) - c
    index = np.arange(total, dtype=np.int64) + np.repeat(pos - offsets, c)
    for r, k in zip(rows, c.tolist()):
        r.pos += k
    return uniform(np.repeat(keys, c), index.astype(_U64))


def integers_rows(rows: list[Draws], counts, high, low=0) -> np.ndarray:
    """``np.concatenate([r.integers(low, h, size=c) ...])`` for every row at once; ``high`` is one
    bound or one per value (``sum(counts)``)."""
    return _below(random_rows(rows, counts), low, high)


def permutations_rows(rows: list[Draws], counts) -> np.ndarray:
    """``np.concatenate([r.permutation(c) for r, c in zip(rows, counts)])``: each row's
    permutation of ``range(c)``, all sorted in one call."""
    c = np.asarray(counts, dtype=np.int64)
    u = random_rows(rows, c)
    if len(u) == 0:
        return np.zeros(0, dtype=np.int64)
    row = np.repeat(np.arange(len(c), dtype=np.int64), c)
    order = np.lexsort((u, row))
    return order - np.repeat(np.cumsum(c) - c, c)


class DrawsBatch:
    """``rng_for(seed, key, stage, *extra)`` for many keys, hashed at once: ``prepare`` the keys,
    then ``get(i)`` (one key's values) or ``rows()`` (every key's, for :func:`random_rows`)."""

    def __init__(self) -> None:
        self._keys: list[int] = []

    def prepare(self, keys: list[tuple]) -> None:
        self._keys = stable_seeds(keys) if keys else []

    def get(self, i: int) -> Draws:
        return Draws(self._keys[i])

    def rows(self) -> list[Draws]:
        """A fresh :class:`Draws` for every prepared key, in order."""
        return [Draws(k) for k in self._keys]

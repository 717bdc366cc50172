"""Per-document random generators.

Every random choice in zhmask takes a generator from :func:`rng_for`, seeded by a stable hash
of (seed, document or example id, stage[, extra]).  Nothing depends on Python's ``hash()``,
on the order documents are processed, or on the number of workers, so shards are
byte-identical however the build is scheduled.
"""
from __future__ import annotations

import hashlib

import numpy as np
from numpy.random.bit_generator import ISeedSequence


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


def rng_for(seed: int, doc_id: str, stage: str, *extra: object) -> np.random.Generator:
    """The generator for one (seed, document, stage) triple; ``extra`` adds e.g. an epoch."""
    return np.random.Generator(np.random.PCG64(stable_seed(seed, doc_id, stage, *extra)))


# ---------------------------------------------------------------------- many generators at once
# Building ``np.random.PCG64(seed)`` costs about 20 us (a SeedSequence, then its state), more than
# masking an example.  For many seeds at once, the SeedSequence arithmetic (numpy's
# bit_generator.pyx, for an entropy of one 64-bit integer) runs vectorised over all of them and the
# PCG64 state is set on one reused generator: the draws are exactly those of rng_for.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_M32, _M128 = (1 << 32) - 1, (1 << 128) - 1
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG_DEFAULT_MULTIPLIER_128


def _seedseq_words(seeds: list[int]) -> list[np.ndarray]:
    """``SeedSequence(s).generate_state(4, np.uint64)`` for each 64-bit seed ``s``, as four
    columns (word k of every seed in column k)."""
    s = np.asarray(seeds, dtype=np.uint64)
    ent = [(s & np.uint64(_M32)).astype(np.uint32), (s >> np.uint64(32)).astype(np.uint32)]
    u32 = np.uint32
    hc = _INIT_A

    def hashmix(v: np.ndarray) -> np.ndarray:
        nonlocal hc
        v = v ^ u32(hc)
        hc = (hc * _MULT_A) & _M32
        v = v * u32(hc)
        return v ^ (v >> u32(16))

    with np.errstate(over="ignore"):
        zero = np.zeros(len(s), dtype=np.uint32)
        # a seed below 2**32 is one entropy word, hashed like a zero high word: same pool
        mixer = [hashmix(ent[0]), hashmix(ent[1]), hashmix(zero), hashmix(zero)]
        for i_src in range(4):
            for i_dst in range(4):
                if i_src != i_dst:
                    x, y = mixer[i_dst], hashmix(mixer[i_src])
                    r = u32(_MIX_L) * x - u32(_MIX_R) * y
                    mixer[i_dst] = r ^ (r >> u32(16))
        hb = _INIT_B
        words = []
        for i in range(8):  # generate_state(4, uint64): 8 words from the cycled pool
            v = mixer[i % 4] ^ u32(hb)
            hb = (hb * _MULT_B) & _M32
            v = v * u32(hb)
            words.append((v ^ (v >> u32(16))).astype(np.uint64))
    return [words[2 * k] | (words[2 * k + 1] << np.uint64(32)) for k in range(4)]


def _pcg64_states(seeds: list[int]) -> list[tuple[int, int]]:
    """(state, inc) of ``np.random.PCG64(s)`` for each 64-bit seed ``s``."""
    v64 = [c.tolist() for c in _seedseq_words(seeds)]
    out = []
    for v0, v1, v2, v3 in zip(*v64):
        inc = ((((v2 << 64) | v3) << 1) | 1) & _M128
        st = (inc + ((v0 << 64) | v1)) & _M128  # pcg64_srandom_r: step from 0, add initstate, step
        st = (st * _PCG_MULT + inc) & _M128
        out.append((st, inc))
    return out


class GeneratorBatch:
    """``rng_for(seed, key, stage, *extra)`` for many keys, cheaply: ``prepare`` the keys, then
    ``get(i)`` returns one reused generator set to the i-th key's state (valid until the next
    ``get``; never keep it)."""

    def __init__(self) -> None:
        self._bg = np.random.PCG64(0)
        self._gen = np.random.Generator(self._bg)
        self._states: list[tuple[int, int]] = []
        self._pool: list[tuple[np.random.PCG64, np.random.Generator]] = []

    def prepare(self, keys: list[tuple]) -> None:
        self._states = _pcg64_states(stable_seeds(keys)) if keys else []

    def get(self, i: int) -> np.random.Generator:
        st, inc = self._states[i]
        self._bg.state = {"bit_generator": "PCG64", "state": {"state": st, "inc": inc}, "has_uint32": 0, "uinteger": 0}
        return self._gen

    def generators(self) -> list[np.random.Generator]:
        """A distinct generator for every prepared key, each set to its key's state (reused
        objects: valid until the next call; ``get`` does not touch them)."""
        pool = self._pool
        while len(pool) < len(self._states):
            bg = np.random.PCG64(0)
            pool.append((bg, np.random.Generator(bg)))
        out = []
        for (bg, gen), (st, inc) in zip(pool, self._states):
            bg.state = {"bit_generator": "PCG64", "state": {"state": st, "inc": inc}, "has_uint32": 0, "uinteger": 0}
            out.append(gen)
        return out


class _KnownWords(ISeedSequence):
    """A seed sequence whose four 64-bit words for PCG64 are known already (computed for many
    seeds at once by :func:`seed_words`): ``np.random.PCG64(_KnownWords(w, seed))`` is the bit
    generator of ``PCG64(seed)`` without the SeedSequence arithmetic (about 2 us instead of 10)."""

    __slots__ = ("words", "seed")

    def __init__(self, words: np.ndarray, seed: int) -> None:
        self.words = words
        self.seed = seed

    def generate_state(self, n_words: int, dtype=np.uint32) -> np.ndarray:
        if n_words == 4 and dtype is np.uint64:  # what PCG64 asks for
            return self.words.copy()
        return np.random.SeedSequence(self.seed).generate_state(n_words, dtype)


def seed_words(seeds: list[int]) -> list[np.ndarray]:
    """Per seed, the words ``SeedSequence(seed).generate_state(4, np.uint64)`` (contiguous)."""
    if not seeds:
        return []
    return list(np.ascontiguousarray(np.stack(_seedseq_words(seeds), axis=1)))


def generator_from_words(words: np.ndarray, seed: int) -> np.random.Generator:
    """``np.random.Generator(np.random.PCG64(seed))`` from ``seed_words([seed])[0]``: equal draws."""
    return np.random.Generator(np.random.PCG64(_KnownWords(words, seed)))

"""zhmask.rng: every random value is a function of (key, index), taken one key at a time or for a
whole batch at once with equal results."""
from __future__ import annotations

import numpy as np
import pytest

from zhmask.rng import (Draws, DrawsBatch, draw_bits, integers_rows, permutations_rows, random_rows, rng_for,
                        stable_seed, uniform)


def test_splitmix64_reference_vector():
    # the first outputs of SplitMix64 seeded with 1234567, as its reference implementation
    # (Vigna's splitmix64.c) prints them
    got = draw_bits(np.uint64(1234567), np.arange(5, dtype=np.uint64)).tolist()
    assert got == [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
                   16408922859458223821]


def test_a_value_depends_on_its_key_and_index_only():
    k = stable_seed(7, "doc:1", "pack")
    a = Draws(k)
    first = a.random(5)
    # any index directly, in any order, from a fresh walk or from the array function
    assert uniform(np.uint64(k), np.array([4, 0, 2], dtype=np.uint64)).tolist() == first[[4, 0, 2]].tolist()
    b = Draws(k)
    assert [b.random() for _ in range(5)] == first.tolist()  # the scalar path (Python integers) agrees
    assert rng_for(7, "doc:1", "pack").random(5).tolist() == first.tolist()
    # another key, stage or extra gives other values
    assert rng_for(7, "doc:1", "pack", 1).random() != first[0]
    assert rng_for(8, "doc:1", "pack").random() != first[0]
    assert all(0.0 <= x < 1.0 for x in first)


def test_small_and_large_requests_take_the_same_values():
    # up to 8 values come from Python integers, more from numpy: one sequence either way
    a, b = Draws(12345), Draws(12345)
    got = np.concatenate([a.random(3), a.random(20), a.random(1), a.random((2, 4)).ravel()])
    assert np.array_equal(got, b.random(3 + 20 + 1 + 8))
    assert a.pos == b.pos == 32


def test_integers_permutation_choice():
    d = Draws(99)
    v = d.integers(3, 10, size=20000)
    assert v.min() == 3 and v.max() == 9
    counts = np.bincount(v - 3)
    assert counts.min() > 20000 / 7 * 0.9 and counts.max() < 20000 / 7 * 1.1
    # per-value bounds broadcast; a bound of one gives its low end
    hi = np.array([1, 2, 5, 1000])
    assert ((0 <= d.integers(0, hi)) & (d.integers(0, hi) < hi)).all() and d.integers(0, np.array([1, 1])).tolist() == [0, 0]
    assert isinstance(d.integers(4), int) and 0 <= d.integers(4) < 4
    with pytest.raises(ValueError):
        d.integers(3, 3)
    p = d.permutation(50)
    assert sorted(p.tolist()) == list(range(50))
    assert sorted(d.permutation(np.array([5, 6, 7])).tolist()) == [5, 6, 7]
    picks = d.choice(4, size=40000, p=[0.1, 0.2, 0.3, 0.4])
    share = np.bincount(picks, minlength=4) / 40000
    assert np.allclose(share, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    k = d.choice(10, size=10, replace=False)
    assert sorted(k.tolist()) == list(range(10))
    with pytest.raises(ValueError):
        d.choice(3, size=4, replace=False)
    assert d.choice(["a", "b"]) in ("a", "b")


def test_batch_functions_equal_one_key_at_a_time():
    keys = [stable_seed(1, f"d{i}#mlm0", "mask", 0) for i in range(30)]
    counts = [i % 7 for i in range(30)]
    one = [Draws(k) for k in keys]
    many = [Draws(k) for k in keys]
    for d in one[::3]:  # some keys already partly walked: the batch continues where each stands
        d.random(2)
    for d in many[::3]:
        d.random(2)
    want = np.concatenate([d.random(c) for d, c in zip(one, counts)])
    assert np.array_equal(random_rows(many, counts), want)
    assert [d.pos for d in one] == [d.pos for d in many]
    bounds = np.arange(1, sum(counts) + 1)
    want_i = np.concatenate([d.integers(0, bounds[a:a + c]) for d, c, a in
                             zip(one, counts, np.cumsum([0] + counts).tolist())])
    assert np.array_equal(integers_rows(many, counts, bounds), want_i)
    want_p = np.concatenate([d.permutation(c) for d, c in zip(one, counts)])
    assert np.array_equal(permutations_rows(many, counts), want_p)
    assert random_rows([], []).shape == (0,) and permutations_rows(many[:2], [0, 0]).shape == (0,)


def test_draws_batch_hashes_keys_as_rng_for():
    gb = DrawsBatch()
    keys = [(3, f"x{i}", "mask", k) for i in range(4) for k in range(2)]
    gb.prepare(keys)
    rows = gb.rows()
    for i, key in enumerate(keys):
        assert gb.get(i).random(3).tolist() == rng_for(*key).random(3).tolist() == rows[i].random(3).tolist()


def test_values_are_uniform_and_independent_across_neighbouring_keys():
    # neighbouring keys and indices (what a weak mixer would correlate): a chi-square test of
    # uniformity over 16 bins and the correlation of consecutive keys' first values
    keys = np.arange(100000, dtype=np.uint64)
    u0 = uniform(keys, np.zeros_like(keys))
    u1 = uniform(keys, np.ones_like(keys))
    hist = np.bincount((u0 * 16).astype(int), minlength=16)
    chi2 = ((hist - len(u0) / 16) ** 2 / (len(u0) / 16)).sum()
    assert chi2 < 40  # 15 degrees of freedom: p < 0.001 above 37.7
    assert abs(np.corrcoef(u0[:-1], u0[1:])[0, 1]) < 0.02
    assert abs(np.corrcoef(u0, u1)[0, 1]) < 0.02

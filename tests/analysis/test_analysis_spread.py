import numpy as np
import pytest

from moe_lib.analysis import spread


def test_median_interval_brackets_the_median_and_is_seeded():
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 10.0, 10.0, 10.0, 10.0]])
    med, lo, hi = spread.median_interval(x, seed=3)
    assert med.tolist() == [3.0, 10.0]
    assert (lo <= med).all() and (med <= hi).all()
    assert lo[1] == hi[1] == 10.0                       # no spread, no interval
    again = spread.median_interval(x, seed=3)
    assert np.array_equal(again[1], lo) and np.array_equal(again[2], hi)


def test_median_interval_of_three_seeds_is_their_range():
    # a resample's median is min with probability 7/27 > 2.5%: the 95% interval is [min, max]
    med, lo, hi = spread.median_interval([0.5, 0.2, 0.9])
    assert (float(med), float(lo), float(hi)) == (0.5, 0.2, 0.9)


def test_median_interval_covers_the_true_median_about_as_often_as_its_level():
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=(400, 15))                   # true median 1
    _, lo, hi = spread.median_interval(x, n_boot=1000)
    cover = float(((lo <= 1) & (1 <= hi)).mean())
    assert 0.88 <= cover <= 0.99


def test_ratio_interval():
    r, lo, hi = spread.ratio_interval([4.0, 4.0, 4.0], [1.0, 2.0, 4.0])
    assert r == 2.0 and lo == 1.0 and hi == 4.0
    with pytest.raises(ValueError, match="positive"):
        spread.ratio_interval([1.0, -1.0], [1.0])


def test_null_spread_bound_ignores_a_real_shift_between_groups():
    rng = np.random.default_rng(1)
    noise = rng.lognormal(sigma=0.2, size=(3, 5))
    same = spread.null_spread_bound(noise)
    shifted = spread.null_spread_bound(noise * np.array([[1.0], [10.0], [100.0]]))
    assert same == pytest.approx(shifted)               # residuals are centred per group
    assert 1.0 <= same < 3.0
    assert spread.null_spread_bound(np.ones((2, 4))) == 1.0


def test_null_spread_bound_has_about_its_level_under_the_null():
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(200):
        g = rng.lognormal(sigma=0.3, size=(2, 9))
        med = np.median(g, axis=1)
        hits += med.max() / med.min() <= spread.null_spread_bound(g, n_boot=500)
    assert 0.85 <= hits / 200 <= 1.0


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="groups"):
        spread.null_spread_bound(np.ones((1, 3)))
    with pytest.raises(ValueError, match="level"):
        spread.median_interval([1.0, 2.0], level=1.5)
    with pytest.raises(ValueError, match="finite"):
        spread.median_interval([1.0, np.nan])

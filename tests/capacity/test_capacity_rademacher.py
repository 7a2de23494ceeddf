"""Rademacher estimators against their closed forms and hand-computed values."""

import itertools
import math

import numpy as np
import pytest

from moe_lib.capacity import rademacher as rd


def all_signs(m):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=m)))


def test_signs_are_seeded_and_pm1():
    a = rd.signs(50, 7, np.random.default_rng(4))
    assert a.shape == (50, 7) and set(np.unique(a)) == {-1.0, 1.0}
    assert (a == rd.signs(50, 7, np.random.default_rng(4))).all()


def test_linear_sup_by_hand_and_exact_expectation_in_the_sandwich():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    sups = rd.linear_l2_sups(X, np.array([[1.0, 1.0], [1.0, -1.0]]), B=2.0)
    assert sups == pytest.approx([math.sqrt(2)] * 2)
    assert rd.linear_l2_sups(np.array([[3.0, 4.0]]), np.array([[1.0], [-1.0]])).tolist() == [5.0, 5.0]
    assert rd.linear_l2_upper(np.array([[3.0, 4.0]])) == 5.0          # m = 1: the bound is exact
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))
    exact = rd.linear_l2_sups(X, all_signs(8)).mean()
    assert rd.linear_l2_lower(X) <= exact <= rd.linear_l2_upper(X)
    mean, se = rd.mean_and_se(rd.linear_l2_sups(X, rd.signs(4000, 8, rng)))
    assert abs(mean - exact) <= 4 * se
    mean, se = rd.linear_l2_mc(X, 3000, rng, chunk=700)
    assert abs(mean - exact) <= 4 * se
    assert rd.linear_l2_upper(X) <= rd.linear_l2_bound(1.0, float(np.linalg.norm(X, axis=1).max()), 8)


def test_massart_by_hand():
    A = np.array([[1.0, 1.0], [-1.0, -1.0]])
    assert rd.finite_class_sups(A, all_signs(2)).mean() == pytest.approx(0.5)
    assert rd.massart_bound(A) == pytest.approx(math.sqrt(2) * math.sqrt(2 * math.log(2)) / 2)


def test_ramp_and_disk_grid_cover():
    assert rd.ramp([-1.0, 0.0, 0.5, 2.0]).tolist() == [1.0, 1.0, 0.5, 0.0]
    assert rd.ramp(0.25, gamma=0.5) == pytest.approx(0.5)
    W, h = rd.disk_grid(2.0, 11, 64)
    rng = np.random.default_rng(0)
    r, th = 2 * np.sqrt(rng.random(2000)), 2 * np.pi * rng.random(2000)
    w = np.stack([r * np.cos(th), r * np.sin(th)], 1)
    assert np.linalg.norm(w[:, None] - W[None], axis=2).min(axis=1).max() <= h


def test_ramp_sups_obey_contraction_on_average():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 2)), np.sign(rng.standard_normal(30))
    s = rd.signs(400, 30, rng)
    sups, slack = rd.ramp_linear_sups(X, y, s, 1.0, 0.5)
    diff = sups + slack - rd.linear_l2_sups(X, s, 1.0) / 0.5
    mean, se = rd.mean_and_se(diff)
    assert mean <= 3 * se


def test_mlp_sign_fit_is_a_valid_lower_estimate():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 2))
    v = rd.mlp_sign_fit(X, rd.signs(8, 4, rng), width=16, steps=150, lr=0.05)
    assert v.shape == (8,) and (v <= 1.0).all() and v.mean() > 0.5


def test_bad_inputs():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="sigma"):
        rd.linear_l2_sups(X, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sigma"):
        rd.linear_l2_sups(X, np.ones((2, 4)))
    with pytest.raises(ValueError, match="B"):
        rd.linear_l2_upper(X, B=-1.0)
    with pytest.raises(ValueError, match="X"):
        rd.linear_l2_upper(np.zeros(3))
    with pytest.raises(ValueError, match="values"):
        rd.mean_and_se([1.0])
    with pytest.raises(ValueError, match="y"):
        rd.ramp_linear_sups(X, np.zeros(3), np.ones((2, 3)), 1.0, 1.0)
    with pytest.raises(ValueError, match="X"):
        rd.ramp_linear_sups(np.zeros((3, 3)), np.ones(3), np.ones((2, 3)), 1.0, 1.0)


def test_threshold_sup_deviation_population_loss_is_exact():
    rng = np.random.default_rng(0)
    # one threshold: Z = L_D - L_S, mean 0 over resamples, and L_D = eta + (1 - 2 eta) |t - 1/2|
    z = rd.threshold_sup_deviation(50, 20000, [0.3], 0.1, rng)
    assert abs(z.mean()) < 4 * z.std() / math.sqrt(z.size)
    assert z.shape == (20000,) and z.max() <= 1.0
    with pytest.raises(ValueError, match="eta"):
        rd.threshold_sup_deviation(5, 5, [0.5], 0.7, rng)
    with pytest.raises(ValueError, match="thresholds"):
        rd.threshold_sup_deviation(5, 5, [1.5], 0.1, rng)

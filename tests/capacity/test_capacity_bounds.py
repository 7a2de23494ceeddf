import math

import numpy as np
import pytest
import torch

from moe_lib.capacity import bounds as cb
from moe_lib.capacity import spectral as sp
from moe_lib.experiments import p3_generalization as pg


@pytest.mark.parametrize("k,relaxed,exact", [(1, 3.77, 2.77), (4, 9.55, 7.51), (8, 13.55, 9.46),
                                             (12, 15.45, 7.51), (16, 16.00, 0.00)])
def test_t16_table(k, relaxed, exact):
    assert abs(float(cb.sparsity_factor(16, k)) - relaxed) <= 0.005
    assert abs(float(cb.sparsity_factor(16, k, exact=True)) - exact) <= 0.005


@pytest.mark.parametrize("m,T,k,d_N,relaxed,exact", [
    (10**6, 64, 2, 32768, 1.46, 1.40), (10**8, 64, 2, 32768, 0.156, 0.150),
    (10**5, 8, 1, 128, 0.217, 0.205), (10**5, 8, 2, 128, 0.236, 0.220),
    (10**5, 8, 8, 128, 0.269, 0.177)])
def test_vacuity_table(m, T, k, d_N, relaxed, exact):
    assert abs(float(cb.routing_term(m, T, k, d_N, 0.05)) - relaxed) <= 0.01
    assert abs(float(cb.routing_term(m, T, k, d_N, 0.05, exact=True)) - exact) <= 0.01


def test_bound_by_hand():
    # T = 4, k = 1, d_N = 12, m = 100, delta = 0.05, C R = 0.1
    inner = 2 * 12 * (1 + math.log(4)) + 12 * math.log(200) + math.log(80)
    want = 0.4 + 2 * math.sqrt(inner / 200)
    assert math.isclose(float(cb.sparse_moe_bound(100, 4, 1, 12, 1.0, 0.1, 0.05)), want, rel_tol=1e-12)
    assert math.isclose(float(cb.log_binom(10, 3)), math.log(120), rel_tol=1e-12)
    T = np.arange(1, 200)
    assert np.all(cb.sparsity_factor(T, 1) >= cb.sparsity_factor(T, 1, exact=True))


def test_vacuity_m_is_the_first_non_vacuous_size():
    m = int(cb.vacuity_m(4, 1, 12))
    assert float(cb.routing_term(m, 4, 1, 12)) <= 1 < float(cb.routing_term(m - 1, 4, 1, 12))


def test_conservative_expert_sum():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    sel = np.array([[0], [1]])
    assert cb.conservative_expert_sum(x, sel, 1.0, 2) == pytest.approx(5 / 2)


@pytest.mark.parametrize("call", [
    lambda: cb.routing_term(10, 4, 5, 12), lambda: cb.routing_term(0, 4, 1, 12),
    lambda: cb.routing_term(10, 4, 1, 12, delta=1.5), lambda: cb.sparsity_factor(4.5, 1),
    lambda: cb.expert_term(-1, 0.1),
    lambda: cb.conservative_expert_sum(np.ones((2, 2)), np.array([[0], [3]]), 1.0, 2)])
def test_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


def test_spectral_complexity_known_norms():
    assert sp.spectral_complexity([np.array([[3.0, 4.0]])]) == pytest.approx(5.0)
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 3)))[0].T
    assert sp.spectral_complexity([q]) == pytest.approx(3.0)
    a = np.diag([2.0, 1.0])
    # two layers diag(2, 1): prod sigma = 4, ratio = (3/2)^(2/3) each, R_A = 4 * (2 (1.5)^(2/3))^1.5
    assert sp.spectral_complexity([a, a]) == pytest.approx(4 * (2 * 1.5 ** (2 / 3)) ** 1.5)
    assert sp.norm_21(np.array([[3.0, 0.0], [4.0, 1.0]])) == pytest.approx(6.0)
    assert sp.spectral_complexity([a, a]) >= 2 ** 1.5 * sp.spectral_product([a, a])
    aug = sp.augment_bias(np.ones((2, 3)), [1.0, 2.0])
    assert aug.shape == (3, 4) and aug[-1].tolist() == [0, 0, 0, 1]
    assert sp.ramp_rademacher_bound(1.0, 2.0, 1, 100, 1.0) == pytest.approx(
        0.04 + 12 * 2 * math.sqrt(math.log(2)) * math.log(100) / 100)
    assert sp.ramp_gap_bound(0.25, 200, 0.05) == pytest.approx(0.5 + 4 * math.sqrt(math.log(80) / 100))


@pytest.mark.parametrize("call", [
    lambda: sp.spectral_complexity([]), lambda: sp.spectral_complexity([np.zeros((2, 2))]),
    lambda: sp.spectral_complexity([np.ones((2, 3)), np.ones((2, 3))]),
    lambda: sp.spectral_complexity([np.ones((2, 2))], rho=-1.0),
    lambda: sp.augment_bias(np.ones((2, 3)), [1.0]), lambda: sp.margin_bound(0, 1, 1, 2, 10, 1, 2.0),
    lambda: sp.ramp_gap_bound(-1.0, 10), lambda: sp.ramp_gap_bound(0.1, 10, delta=1.0)])
def test_spectral_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


def test_relu_router_patterns_and_sign_test():
    pts = np.random.default_rng(0).uniform(-1, 1, (6, 2))
    r = pg.relu_router_patterns(pts, 3, 1, 4, 1, 200, 0)
    assert 1 <= r["count"] <= min(200, 3 ** 6) and r["params"] == (2 * 4 + 4) + (4 * 3 + 3)
    assert pg.sign_test_threshold(16) == 12 and pg.sign_test_threshold(5) == 5
    k = pg.optimal_k_analytic([0.1, 1.0], 1.0, 1000, 8, 24, exact=True)
    assert k.tolist() == [8, 8]


def test_train_sweep_per_seed_samplers_train_each_model_on_its_own_set():
    teacher = pg.regions_teacher(2, 0)
    res = pg.classification_sweep([(2, 1, 0)], [16, 32], [0, 1], steps=5, lr=0.01, batch_size=8,
                                  teacher=teacher, noise=0.0, n_test=50, gamma=1.0)
    assert res["gap_ramp"].shape == (1, 2, 2) and np.isfinite(res["gap_ramp"]).all()
    assert [x.shape[0] for x, _ in res["train"]] == [16, 16, 32, 32]
    x, y = pg.skill_data(10, pg.skill_teacher(3, 4, 0), 2, 0)
    assert x.shape == (10, 3) and y.shape == (10, 1) and torch.isfinite(y).all()

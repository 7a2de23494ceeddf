"""Growth-function machinery: counters and binomial bounds against hand-computed values."""

import math

import numpy as np
import pytest

from moe_lib.capacity import growth as gr


def test_t16_table_relaxed_and_exact():
    k = np.array([1, 4, 8, 12, 16])
    relaxed = gr.relaxed_log_binom(16, k)
    exact = gr.log_binom(16, k)
    assert relaxed == pytest.approx([3.77, 9.55, 13.55, 15.45, 16.00], abs=0.005)
    assert exact == pytest.approx([2.77, 7.51, 9.46, 7.51, 0.00], abs=0.005)
    assert exact[2] == pytest.approx(math.log(12870))


def test_binomial_sums_and_cover():
    assert gr.binom_sum(5, 2) == 16 and gr.binom_sum(3, 10) == 8 and gr.binom_sum(0, 0) == 1
    L = gr.log_binom_sum(30, 6)
    assert np.exp(L[5, 2]) == pytest.approx(16)
    assert all(L[m, d] == pytest.approx(math.log(gr.binom_sum(m, d))) for m in range(31) for d in range(7))
    assert [gr.cover_count(m, 3) for m in range(1, 9)] == [2, 4, 8, 14, 22, 32, 44, 58]
    assert gr.cover_count(3, 4) == 8                       # m <= n: every dichotomy
    assert gr.log_sauer_shelah(10, 2) == pytest.approx(2 * (1 + math.log(5)))


def test_sauer_shelah_needs_m_at_least_d():
    assert gr.binom_sum(1, 2) == 2 > math.exp(gr.log_sauer_shelah(1, 2))   # (e/2)^2 < 2
    assert gr.binom_sum(40, 3) <= math.exp(gr.log_sauer_shelah(40, 3))


def test_distinct_prefix_counts_by_hand():
    codes = np.array([[1, 2, 3], [1, 2, 4], [1, 5, 3], [1, 2, 3]])
    assert gr.distinct_prefix_counts(codes).tolist() == [1, 2, 3]
    rng = np.random.default_rng(0)
    P = rng.integers(0, 3, (200, 6))
    assert gr.distinct_prefix_counts(P).tolist() == [len({tuple(r) for r in P[:, :m]}) for m in range(1, 7)]


def test_exact_counts_equal_cover_and_bound_random_counts():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 2))
    exact, lps = gr.exact_pattern_counts(X, 2, 1)
    assert exact.tolist() == [gr.cover_count(m, 3) for m in range(1, 7)]
    assert lps == 2 * (1 + sum(exact[:-1]))
    codes = gr.random_router_codes(X, 2, 1, 5000, rng)
    assert (gr.distinct_prefix_counts(codes) <= exact).all()
    nobias, _ = gr.exact_pattern_counts(X, 2, 1, bias=False)
    assert nobias.tolist() == [gr.cover_count(m, 2) for m in range(1, 7)]


def test_random_codes_select_k_experts():
    rng = np.random.default_rng(0)
    codes = gr.random_router_codes(rng.standard_normal((10, 2)), 5, 2, 300, rng, batch=128)
    assert codes.shape == (300, 10)
    assert {bin(c).count("1") for c in codes.ravel().tolist()} == {2}
    assert codes.max() < 2 ** 5


def test_bad_inputs():
    with pytest.raises(ValueError, match="k"):
        gr.log_binom(3, 4)
    with pytest.raises(ValueError, match="T"):
        gr.relaxed_log_binom(0, 1)
    with pytest.raises(ValueError, match="n"):
        gr.log_binom(np.array([1.5]), 1)
    with pytest.raises(ValueError, match="m"):
        gr.cover_count(0, 3)
    with pytest.raises(ValueError, match="codes"):
        gr.distinct_prefix_counts(np.zeros(3))
    with pytest.raises(ValueError, match="k"):
        gr.random_router_codes(np.zeros((2, 2)), 3, 4, 10, np.random.default_rng(0))

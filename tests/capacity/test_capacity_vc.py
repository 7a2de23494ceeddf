"""P1-R3 VC machinery and P1-R4 shattering: hand-computed values, exact counts, bad inputs."""

import numpy as np
import pytest

from moe_lib.capacity import superexpressive as se
from moe_lib.capacity import vc


def test_vc_bound_and_crossover_by_hand():
    assert vc.vc_bound(4, 2, 2, 8) == 4 * max(8, 16) == 64
    assert vc.vc_bound(16, 2, 2, 8) == 16 * 32
    assert list(vc.vc_bound(np.array([1, 8, 9]), 2, 2, 8)) == [16, 128, 162]
    assert vc.crossover(2, 2, 8) == 8.0
    L = np.arange(1, 30)
    per = vc.vc_bound(L, 2, 2, 8) // L
    assert np.all((per == 16) == (L <= 8))


def test_counts_by_hand():
    assert vc.momlp_parameters(1, 2, 2, 8) == 2 + (2 * 8 + 8 + 8 + 1)
    assert vc.sauer(5, 2) == 1 + 5 + 10
    assert vc.sauer(3, 7) == 8
    assert vc.cover_count(4, 2) == 14
    assert vc.cover_count(3, 2) == 8
    assert vc.bartlett_proxy(8, 2) == pytest.approx(48.0)


def test_lp_counts_match_cover_and_two_key_shatters_small_sets():
    x = np.random.default_rng(3).random((7, 2))
    d = vc.halfspace_dichotomies(x)
    assert d.size == vc.cover_count(7, 2)
    assert 0 in d and (1 << 7) - 1 in d
    for m in range(1, 6):
        dm = np.unique(d & ((1 << m) - 1))
        assert vc.two_key_affine_patterns(dm, m).size == 2 ** m
    # XOR on a square is not affine but is a two-key labelling
    sq = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert not vc.halfspace_realisable(sq, np.array([1.0, 1.0, -1.0, -1.0]))
    assert vc.halfspace_realisable(sq, np.array([1.0, -1.0, 1.0, -1.0]))


def test_sampled_patterns_are_bounded():
    rng = np.random.default_rng(0)
    s = vc.key_routed_signs(rng.random((10, 2)), 2, 2, 4, 300, rng, chunk=128)
    assert s.shape == (300, 10) and s.dtype == bool
    c = vc.count_prefix_patterns(s, [1, 5, 10])
    assert np.all(c <= np.minimum(2 ** np.array([1, 5, 10]), 300)) and np.all(np.diff(c) >= 0)


def test_vc_bad_inputs():
    with pytest.raises(ValueError, match="L, n, J, W"):
        vc.vc_bound(0, 2, 2, 8)
    with pytest.raises(ValueError, match="y: expected labels"):
        vc.halfspace_realisable(np.zeros((2, 2)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="number of points"):
        vc.halfspace_dichotomies(np.zeros((15, 2)))
    with pytest.raises(ValueError, match="m"):
        vc.count_prefix_patterns(np.zeros((3, 4), bool), [5])


@pytest.mark.parametrize("base", [2, 4, 10])
def test_sin_network_shatters_small_sets(base):
    for m in range(1, 7):
        lab = se.all_labellings(m)
        assert (se.shatter_mp(lab, 40, base) == lab).all()
        assert (se.shatter_float64(lab, base) == lab).all()


def test_theta_and_float64_failure():
    assert se.theta_integer([1, 0, 1]) == 5
    assert se.theta_integer([0, 0]) == 1 + 2 + 4
    assert se.theta_integer([0], base=10) == 11
    first, errors = se.first_float64_failure(56, 50, np.random.default_rng(0), exhaustive_up_to=4)
    assert first == 53 and errors[52] == 0
    assert se.digits_needed(8) == 6 + 3
    assert 0 < se.margin(3) < se.margin(2)


def test_superexpressive_bad_inputs():
    with pytest.raises(ValueError, match="even"):
        se.theta_integer([1], base=3)
    with pytest.raises(ValueError, match="labels in"):
        se.theta_integer([2])
    with pytest.raises(ValueError, match="m"):
        se.all_labellings(0)

"""Natarajan machinery: exact LP realisability and N-shattering on cases known by hand."""

import math

import numpy as np
import pytest

from moe_lib.capacity import natarajan as nt

TRIANGLE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
SQUARE = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])


def onehot(labels, T):
    return np.eye(T, dtype=bool)[labels]


def test_subset_masks_and_codes():
    assert nt.subset_masks(3, 2).tolist() == [[True, True, False], [True, False, True],
                                              [False, True, True]]
    assert nt.subset_masks(5, 2).shape == (10, 5)
    assert nt.masks_to_codes(np.array([[True, False, True], [False, True, False]])).tolist() == [5, 2]


def test_topk_masks_breaks_ties_to_lower_index():
    W = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])           # experts 0 and 1 tie everywhere
    m = nt.topk_masks(np.array([[2.0], [-2.0]]), W, 1)
    assert m.tolist() == [[True, False, False], [False, False, True]]


def test_realisable_one_dimensional_cases():
    x = np.array([[-1.0], [0.0], [1.0]])
    assert nt.realisable(x, onehot([0, 0, 1], 2))                    # a threshold
    assert not nt.realisable(x, onehot([0, 1, 0], 2))                # no threshold does this
    assert nt.realisable(x, onehot([0, 1, 2], 3))                    # upper envelope of 3 lines
    assert not nt.realisable(x, onehot([0, 2, 0], 3))                # middle line cannot top both ends
    W = nt.realising_weights(x, onehot([0, 1, 2], 3))
    assert nt.topk_masks(x, W, 1).tolist() == onehot([0, 1, 2], 3).tolist()


def test_xor_is_not_realisable_and_complements_agree():
    assert not nt.realisable(SQUARE, onehot([0, 0, 1, 1], 2))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2))
    S = nt.subset_masks(3, 1)
    for _ in range(20):
        lab = S[rng.integers(0, 3, 5)]
        assert nt.realisable(X, lab) == nt.realisable(X, ~lab)        # top-2 = complement of bottom-1


def test_binary_shattering_by_lp_matches_vc_dimension():
    f0, f1 = onehot([0, 0, 0], 2), onehot([1, 1, 1], 2)
    assert nt.is_n_shattered(TRIANGLE, f0, f1) == (True, 8)          # half-planes shatter 3 points
    four = np.vstack([TRIANGLE, [[0.3, 0.3]]])
    assert not nt.is_n_shattered(four, onehot([0] * 4, 2), onehot([1] * 4, 2))[0]   # Radon
    assert not nt.is_n_shattered(SQUARE, onehot([0] * 4, 2), onehot([1] * 4, 2))[0]
    two = np.array([[1.0, 0.2], [0.1, 1.0]])
    assert nt.is_n_shattered(two, onehot([0, 0], 2), onehot([1, 1], 2), bias=False)[0]
    assert not nt.is_n_shattered(TRIANGLE + 1, onehot([0] * 3, 2), onehot([1] * 3, 2), bias=False)[0]


def test_search_finds_the_exact_binary_dimension_and_respects_bounds():
    rng = np.random.default_rng(0)
    r = nt.search_shattered(2, 1, 2, True, 5, 10, rng)
    assert r["found"] == 3 and r["successes"][4] == 0
    X, f0, f1 = r["witness"]
    assert nt.is_n_shattered(X, f0, f1)[0]
    r = nt.search_shattered(3, 1, 2, True, 7, 6, rng)
    assert 3 <= r["found"] <= nt.dn_bound_sharp(2, 3) <= nt.dn_bound_dT(2, 3)


def test_candidates_differ_everywhere_and_are_realisable():
    rng = np.random.default_rng(1)
    for kind in ("shift", "two"):
        X, f0, f1 = nt.candidate(6, 4, 2, 2, True, rng, kind)
        assert X.shape == (6, 2) and not (f0 == f1).all(axis=1).any()
        assert nt.realisable(X, f0) and nt.realisable(X, f1)


def test_bounds_by_hand():
    assert nt.dn_bound_dT(2, 4) == 12 and nt.dn_bound_dT(2, 4, bias=False) == 8
    assert nt.dn_bound_sharp(2, 2) == 3 and nt.dn_bound_sharp(2, 4, bias=False) == 6
    assert nt.log_natarajan_lemma_bound(10, 3, 2) == pytest.approx(2 * math.log(10) + 4 * math.log(3))


def test_bad_inputs():
    with pytest.raises(ValueError, match="labels"):
        nt.realisable(TRIANGLE, onehot([0, 1], 2))
    with pytest.raises(ValueError, match="labels"):
        nt.realisable(TRIANGLE, np.array([[1, 0], [0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="f0"):
        nt.is_n_shattered(TRIANGLE, onehot([0, 1, 0], 2), onehot([1, 1, 1], 2))
    with pytest.raises(ValueError, match="X"):
        nt.features(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="k"):
        nt.subset_masks(3, 4)
    with pytest.raises(ValueError, match="W"):
        nt.topk_masks(TRIANGLE, np.zeros((3, 2)), 1)
    with pytest.raises(ValueError, match="kind"):
        nt.candidate(3, 3, 1, 2, True, np.random.default_rng(0), "other")
    with pytest.raises(ValueError, match="m"):
        nt.log_natarajan_lemma_bound(0, 3, 2)


def test_gate_weights_and_reachable_subsets_by_hand():
    a = nt.gate_weights(np.array([[2, 0]]), np.array([[0.7, 0.3]]), 3)
    assert a.tolist() == [[0.3, 0.0, 0.7]]
    # scores x, -x, 0 on R: top-1 is expert 0 (x>0) or 1 (x<0); expert 2 only ties -> unreachable
    W = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    assert nt.masks_to_codes(nt.reachable_subsets(W, 1)).tolist() == [1, 2]
    # top-2: {0,2} for x>0, {1,2} for x<0; {0,1} never
    assert nt.masks_to_codes(nt.reachable_subsets(W, 2)).tolist() == [5, 6]
    assert len(nt.reachable_subsets(W, 3)) == 1
    with pytest.raises(ValueError, match="idx"):
        nt.gate_weights(np.array([[3]]), np.array([[1.0]]), 3)

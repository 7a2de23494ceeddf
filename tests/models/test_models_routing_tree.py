"""Routing trees of P1: agreement with the flat router and brute force, ties, faces, x_i = 1."""

import math

import numpy as np
import pytest
import torch

import moe_lib as ml
from moe_lib.models import routing_tree as rt


def _points(n, N, rng):
    return torch.cat([torch.from_numpy(rng.random((2000, n))), rt.face_points(n, N, 4, rng),
                      rt.grid_corners(n, N)])


ROUTERS = [
    ("flat", lambda n, D: ml.GridRouter(n, 2 ** D)),
    ("dyadic", lambda n, D: rt.DyadicTreeRouter(n, D)),
    ("kd", lambda n, D: rt.KDTreeRouter(n, 2 ** D)),
    ("nearest", lambda n, D: ml.NearestPrototypeRouter(rt.cell_centres(n, 2 ** D), math.inf)),
]


@pytest.mark.parametrize("name, make", ROUTERS, ids=[r[0] for r in ROUTERS])
def test_shared_router_battery(name, make):
    """Every hard router: indices in range, weights sum to 1, deterministic, one expert per input."""
    rng = np.random.default_rng(3)
    for n, D in [(1, 3), (2, 2), (3, 2)]:
        router = make(n, D)
        x = torch.from_numpy(rng.random((500, n)))
        r = router(x)
        K = 2 ** (n * D)
        assert getattr(router, "n_experts", K) == K
        assert r.idx.shape == (500, 1) and r.k == 1
        assert int(r.idx.min()) >= 0 and int(r.idx.max()) < K
        assert torch.allclose(r.weight.sum(dim=1).double(), torch.ones(500, dtype=torch.float64))
        assert torch.equal(router(x).idx, r.idx)


@pytest.mark.parametrize("n, D", [(1, 1), (1, 6), (2, 1), (2, 4), (3, 1), (3, 3)])
def test_trees_equal_flat_router_everywhere(n, D):
    rng = np.random.default_rng(n * 10 + D)
    x = _points(n, 2 ** D, rng)
    flat = ml.GridRouter(n, 2 ** D)(x).idx
    assert torch.equal(rt.DyadicTreeRouter(n, D)(x).idx, flat)
    assert torch.equal(rt.KDTreeRouter(n, 2 ** D)(x).idx, flat)


@pytest.mark.parametrize("N", [1, 3, 5, 7, 10, 23])
def test_kd_tree_any_N(N):
    rng = np.random.default_rng(N)
    for n in (1, 2, 3):
        x = _points(n, N, rng)
        kd = rt.KDTreeRouter(n, N)
        assert torch.equal(kd(x).idx, ml.GridRouter(n, N)(x).idx)
        _, length = kd.route_with_path(x)
        assert int(length.max()) == kd.path_numbers == n * math.ceil(math.log2(N))


def test_brute_force_agrees_off_faces_and_ties_are_equidistant():
    rng = np.random.default_rng(0)
    n, N = 2, 8
    x = _points(n, N, rng)
    flat = ml.GridRouter(n, N)(x).idx[:, 0]
    centres = rt.cell_centres(n, N)
    tie = rt.on_a_face(x, N)
    assert bool(tie.any()) and bool((~tie).any())
    for norm in (2, math.inf):
        b, dmin = rt.brute_force_cells(x, centres, norm)
        assert torch.equal(b[~tie], flat[~tie])
        own = torch.linalg.vector_norm(x - centres[flat], ord=norm, dim=1)
        assert float((own - dmin).abs().max()) < 1e-12


def test_ties_go_up_and_one_goes_to_the_last_cell():
    tree = rt.DyadicTreeRouter(2, 2)
    x = torch.tensor([[0.5, 0.25], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.75, 0.999]],
                     dtype=torch.float64)
    # row-major k1 * 4 + k2
    assert tree(x).idx[:, 0].tolist() == [2 * 4 + 1, 15, 12, 0, 3 * 4 + 3]


def test_path_lengths_and_storage():
    tree = rt.DyadicTreeRouter(3, 2)
    idx, path = tree.route_with_path(torch.rand(10, 3, dtype=torch.float64))
    assert path.shape == (10, 2) and tree.path_numbers == 6
    assert tree.stored_numbers == 3 * (1 + 8)           # 9 internal nodes, n numbers each
    kd = rt.KDTreeRouter(2, 4)
    assert kd.stored_numbers == 15 and kd.path_numbers == 4


@pytest.mark.parametrize("make, message", [
    (lambda: rt.DyadicTreeRouter(0, 2), r"n: expected an integer in \[1, inf\], got 0"),
    (lambda: rt.DyadicTreeRouter(2, -1), r"depth: expected an integer"),
    (lambda: rt.KDTreeRouter(2, 0), r"cells_per_axis: expected an integer"),
    (lambda: rt.KDTreeRouter(2, 4)(torch.tensor([[0.5, 1.5]])), r"points in \[0,1\]\^2"),
    (lambda: rt.DyadicTreeRouter(2, 2)(torch.zeros(3, 3)), "expected last dimension 2"),
    (lambda: rt.KDTreeRouter(1, 4)(torch.tensor([[float("nan")]])), "NaN/inf"),
    (lambda: rt.brute_force_cells(torch.zeros(2, 2), torch.zeros(3, 2), norm=1), "expected one of"),
])
def test_bad_inputs(make, message):
    with pytest.raises(ValueError, match=message):
        make()

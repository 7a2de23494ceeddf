"""P1 constructions: hats, Kuhn interpolation, E0/E1 error bounds, parameter counts, speed."""

import math
import time

import numpy as np
import pytest
import torch

from moe_lib.constructions import p1_lipschitz as pl
from moe_lib.experiments import p1_approximation as ex


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_hats_partition_of_unity_and_exact_on_affine(n):
    h = pl.hat_checks(n, 3, 1500, np.random.default_rng(n))
    assert h["unity"] < 1e-12 and h["affine"] < 1e-12
    assert h["relu_vs_formula"] < 1e-12 and h["relu_vs_kuhn"] < 1e-12


def test_hat_in_one_dimension_is_the_tent():
    z = torch.linspace(-2, 2, 401, dtype=torch.float64)[:, None]
    assert torch.allclose(pl.hat_relu(z), torch.clamp(1 - z[:, 0].abs(), min=0))


def test_parameter_counts_by_hand():
    # n = 1: relu(z), relu(-z): 4; hat relu(1 - p - q): 2 weights + 1 bias -> 7
    assert pl.hat_unit_params(1) == 7
    # n = 2: first layer 8; each max tree relu(a), relu(b - a): 1 + 2 = 3, two trees 6;
    # hat neuron: 2 + 2 weights + 1 bias = 5 -> 19
    assert pl.hat_unit_params(2) == 19
    # n = 3: 12; tree: pair 3 + carry 1, then pair (2 terms, 1 term) 2 + 3 -> 9, two trees 18; hat 5
    assert pl.hat_unit_params(3) == 35
    assert pl.max_tree(3) == (9, 2, 2)
    assert pl.e1_expert_params(2, 3) == 20 * 16 + 1
    assert pl.e1_expert_params(2, 3, d_out=3) == 16 * (19 + 3) + 3
    assert pl.e1_depth(1) == 3 and pl.e1_depth(4) == 5 and pl.e1_width(2, 3) == 4 * 16


def test_grid_choice_is_robust_to_rounding():
    assert pl.e1_grid(1.0, 0.01, 2) == (10, 10)
    assert pl.e0_cells(1.0, 0.05) == 10
    N, m = pl.e1_grid(2.0, 0.02, 2)
    assert 2.0 / (N * m) <= 0.02 * (1 + 1e-12)


@pytest.mark.parametrize("n, eps", [(1, 0.03), (2, 0.07), (2, 0.03), (3, 0.15)])
def test_constructions_meet_the_bound_on_random_lipschitz_targets(n, eps):
    rng = np.random.default_rng(100 + n)
    for _ in range(3):
        lam = float(rng.uniform(0.5, 3.0))
        f = pl.random_lipschitz_target(n, rng, lam)
        x = torch.from_numpy(rng.random((2000, n)))
        y = x + torch.from_numpy(rng.uniform(-0.01, 0.01, (2000, n)))
        ratio = (f(x) - f(y)).abs() / (x - y).abs().amax(dim=1)
        assert float(ratio.max()) <= lam * (1 + 1e-9)       # the target is lam-Lipschitz
        N0 = pl.e0_cells(lam, eps)
        err0, _ = pl.sup_error(pl.build_e0(f, n, N0), f, n, 2 * N0, 5000, rng,
                               cells_per_axis=N0, n_cells=20, max_dense=300_000)
        N, m = pl.e1_grid(lam, eps, n)
        err1, _ = pl.sup_error(pl.build_e1(f, n, N, m), f, n, 2 * N * m, 5000, rng,
                               cells_per_axis=N, n_cells=20, max_dense=300_000)
        assert float(err0.max()) <= eps * (1 + 1e-9)
        assert float(err1.max()) <= eps * (1 + 1e-9)


def test_relu_form_equals_kuhn_form_in_the_model():
    rng = np.random.default_rng(5)
    f = pl.random_lipschitz_target(2, rng)
    a, b = pl.build_e1(f, 2, 3, 4), pl.build_e1(f, 2, 3, 4, form="relu", router="flat")
    x = torch.from_numpy(rng.random((3000, 2)))
    assert float((a(x) - b(x)).abs().max()) < 1e-12


def test_e1_interpolates_at_nodes_and_is_exact_on_affine():
    f = lambda x: 0.3 * x[:, 0] - 0.7 * x[:, 1] + 0.1            # noqa: E731
    model = pl.build_e1(f, 2, 4, 3)
    x = torch.rand(5000, 2, dtype=torch.float64)
    assert float((model(x)[:, 0] - f(x)).abs().max()) < 1e-12


def test_vector_accounting():
    r = ex.vector_rows(["f_s", "f_r", "f_z"], 2, 0.1, 1, 200, np.random.default_rng(0))
    assert r["stacked_expert"] == sum(pl.e1_expert_params(2, m) for m in r["m_shared"])
    assert r["per_output_path"] == sum(2 * math.ceil(math.log2(p["N"])) for p in r["per_output"])
    assert max(r["stacked_errors"] + r["hat_shared_errors"]) <= 0.1


def test_e1_for_eps_001_is_fast():
    f, lam = pl.target("f_z", 2)
    t0 = time.perf_counter()
    N, m = pl.e1_grid(lam, 0.01, 2)
    model = pl.build_e1(f, 2, N, m)
    err, npts = pl.sup_error(model, f, 2, 4 * N * m, 100000, np.random.default_rng(0))
    assert float(err[0]) <= 0.01 and npts > 700_000
    assert time.perf_counter() - t0 < 20     # a few seconds on an idle core; generous for load


@pytest.mark.parametrize("make, message", [
    (lambda: pl.target("f_q", 2), "target: expected one of"),
    (lambda: pl.e1_grid(1.0, 0.0, 2), "eps: expected a finite number > 0"),
    (lambda: pl.e1_grid(-1.0, 0.1, 2), "lam: expected a finite number > 0"),
    (lambda: pl.build_e1(pl.f_sin, 2, 3, 0), r"m: expected an integer in \[1, inf\]"),
    (lambda: pl.FreudenthalHatBank(2, 2, 2, torch.zeros(4, 8, 1)), r"values: expected shape \(4, 9"),
    (lambda: pl.sup_error(pl.build_e0(pl.f_sin, 3, 4), pl.f_sin, 3, 10, 10,
                          np.random.default_rng(0), max_dense=5, cells_per_axis=4),
     "M: expected a multiple of cells_per_axis 4"),
    (lambda: pl.build_e0(pl.f_sin, 2, 3, router="tree"), "router: expected one of"),
])
def test_bad_inputs(make, message):
    with pytest.raises(ValueError, match=message):
        make()

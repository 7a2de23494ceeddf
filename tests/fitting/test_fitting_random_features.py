import math

import pytest
import torch

import moe_lib as ml
from moe_lib import fitting as ft
from moe_lib import models as mo

F64 = torch.float64


def test_features_are_unit_directions_with_bounded_biases():
    w, b = ft.sample_relu_features(5, 400, seed=1)
    assert w.shape == (400, 5) and b.shape == (400,) and w.dtype == F64
    assert torch.allclose(torch.linalg.vector_norm(w, dim=1), torch.ones(400, dtype=F64))
    assert float(b.abs().max()) <= math.sqrt(5) and float(b.abs().max()) > 0.9 * math.sqrt(5)
    _, b2 = ft.sample_relu_features(5, 400, seed=1, bias_scale=0.1)
    assert float(b2.abs().max()) <= 0.1
    w3, b3 = ft.sample_relu_features(5, 400, seed=1)
    assert torch.equal(w, w3) and torch.equal(b, b3)


def test_sample_relu_features_validates():
    with pytest.raises(ValueError, match="bias_scale"):
        ft.sample_relu_features(3, 10, bias_scale=-1.0)
    with pytest.raises(ValueError, match="width"):
        ft.sample_relu_features(3, 0)


def test_fit_represents_a_relu_network_in_its_span_exactly():
    # target = a network built on the same features: least squares recovers it
    w, b = ft.sample_relu_features(3, 20, seed=4)
    x = torch.rand(500, 3, dtype=F64) * 2 - 1
    a = torch.randn(20, dtype=F64)
    y = torch.relu(x @ w.T + b) @ a + 0.7
    # some features are affine on the whole cube, so phi is rank deficient (cond ~ 1e24):
    # min-norm lstsq is exact; a relative ridge shrinks the poorly determined directions a little
    exact = ft.fit_random_features(x, y, 20, seed=4, ridge=0.0)
    assert ft.sup_error(exact.predict(x), y) < 1e-10
    ridged = ft.fit_random_features(x, y, 20, seed=4, ridge=1e-12)
    assert ft.sup_error(ridged.predict(x), y) < 1e-5 * float(y.abs().max())


def test_fit_error_decreases_with_width_on_a_smooth_1d_target():
    x = torch.linspace(-1, 1, 4001, dtype=F64)[:, None]
    y = torch.sin(3 * x[:, 0])
    errs = ft.width_sweep(x, y, x, y, [8, 32, 128], seed=0)
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-2  # random knots: gaps ~ log(m)/m, error ~ gap^2 |f''| / 8


def test_to_mlp_is_the_same_function_and_an_expert():
    x = torch.randn(300, 4, dtype=F64)
    y = torch.stack([x[:, 0] ** 2, x[:, 1] * x[:, 2]], dim=1)
    net = ft.fit_random_features(x, y, 50, seed=2, bias_scale=2.0)
    assert net.predict(x).shape == (300, 2) and net.d_out == 2 and net.width == 50
    mlp = net.to_mlp()
    assert isinstance(mlp, ml.MLP) and mlp.width == 50 and mlp.depth == 2
    assert mlp.linears[0].weight.dtype == F64
    with torch.no_grad():
        assert float((mlp(x) - net.predict(x)).abs().max()) < 1e-12
    layer = ml.MoE([mlp, mlp], ml.NearestPrototypeRouter(torch.eye(2, 4, dtype=F64)), 4, 2)
    with torch.no_grad():
        assert float((layer(x) - net.predict(x)).abs().max()) < 1e-12


def test_scalar_fit_predicts_a_vector():
    x = torch.rand(100, 2, dtype=F64)
    net = ft.fit_random_features(x, x.sum(1), 10, seed=0)
    assert net.predict(x).shape == (100,)
    assert net.to_mlp()(x).shape == (100, 1)


def test_least_squares_solvers_agree_on_a_well_posed_problem():
    phi = torch.randn(200, 10, dtype=F64)
    y = torch.randn(200, 2, dtype=F64)
    exact = torch.linalg.solve(phi.T @ phi, phi.T @ y)
    assert torch.allclose(ft.least_squares(phi, y, ridge=0.0), exact, atol=1e-10)
    assert torch.allclose(ft.least_squares(phi, y, ridge=1e-12), exact, atol=1e-8)


def test_least_squares_handles_duplicate_columns():
    phi = torch.randn(50, 3, dtype=F64)
    phi = torch.cat([phi, phi[:, :1]], dim=1)  # rank 3
    y = phi[:, :1] * 2.0
    for ridge in (0.0, 1e-10):
        c = ft.least_squares(phi, y, ridge)
        assert torch.allclose(phi @ c, y, atol=1e-6)


def test_least_squares_and_fit_validate():
    phi = torch.randn(10, 3, dtype=F64)
    with pytest.raises(ValueError, match="10 rows"):
        ft.least_squares(phi, torch.zeros(9, 1, dtype=F64))
    with pytest.raises(ValueError, match="ridge"):
        ft.least_squares(phi, torch.zeros(10, 1, dtype=F64), ridge=-1.0)
    with pytest.raises(ValueError, match="shape \\(10,\\)"):
        ft.fit_random_features(phi, torch.zeros(7, dtype=F64), 5)
    with pytest.raises(ValueError, match="finite"):
        ft.fit_random_features(phi, torch.full((10,), math.nan, dtype=F64), 5)


def test_sup_error_and_width_sweep_validate():
    assert ft.sup_error(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0])) == 1.0
    assert ft.sup_error(torch.zeros(3, 1), torch.ones(3)) == 1.0
    with pytest.raises(ValueError, match="shape of target"):
        ft.sup_error(torch.zeros(3), torch.zeros(4))
    x = torch.rand(40, 1, dtype=F64)
    with pytest.raises(ValueError, match="at least one width"):
        ft.width_sweep(x, x[:, 0], x, x[:, 0], [])


def test_width_sweep_uses_samples_per_feature():
    x = torch.linspace(-1, 1, 1000, dtype=F64)[:, None]
    y = x[:, 0].abs()
    few = ft.width_sweep(x, y, x, y, [16], seed=0, samples_per_feature=2)
    many = ft.width_sweep(x, y, x, y, [16], seed=0)
    assert few[0] != many[0]


def test_fit_select_picks_the_ridge_with_the_smallest_validation_error():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 2, generator=g, dtype=F64) * 2 - 1
    xv = torch.rand(300, 2, generator=g, dtype=F64) * 2 - 1

    def f(z):
        return torch.relu(z - 0.3).pow(2).sum(1)

    ridges = [1e-10, 1e-4, 1.0]
    net, chosen = ft.fit_random_features_select(x, f(x), xv, f(xv), 64, ridges, seed=3)
    errs = [ft.sup_error(ft.fit_random_features(x, f(x), 64, seed=3, ridge=r).predict(xv), f(xv))
            for r in ridges]
    assert chosen == ridges[errs.index(min(errs))]
    assert ft.sup_error(net.predict(xv), f(xv)) == pytest.approx(min(errs), rel=1e-6)
    with pytest.raises(ValueError, match="numbers > 0"):
        ft.fit_random_features_select(x, f(x), xv, f(xv), 8, [0.0])
    with pytest.raises(ValueError, match="one per point"):
        ft.fit_random_features_select(x, f(x)[:5], xv, f(xv), 8, [1e-6])


def test_width_sweep_select_reports_errors_and_ridges():
    g = torch.Generator().manual_seed(1)
    x, xv, xt = (torch.rand(n, 1, generator=g, dtype=F64) * 2 - 1 for n in (800, 200, 500))
    out = ft.width_sweep_select(x, torch.cos(2 * x[:, 0]), xv, torch.cos(2 * xv[:, 0]),
                                xt, torch.cos(2 * xt[:, 0]), [8, 64], [1e-8, 1e-2], seed=0,
                                samples_per_feature=10)
    assert out["widths"] == [8, 64] and set(out["ridges"]) <= {1e-8, 1e-2}
    assert out["errors"][1] < out["errors"][0]


def test_additive_interpolant_is_exact_on_piecewise_linear_and_meets_its_bound():
    x = torch.rand(2000, 3, dtype=F64) * 4 - 2
    # g piecewise linear with nodes on the grid: reproduced exactly
    net = ft.additive_interpolant(lambda t: (t - 0.5).abs(), 3, knots=8, low=-2.0, high=2.0)
    assert net.width == 24
    with torch.no_grad():
        assert float((net(x)[:, 0] - (x - 0.5).abs().sum(1)).abs().max()) < 1e-12
    # g = t^2 (g'' = 2): error <= 3 * 2 * h^2 / 8, h = 4 / 10
    sq = ft.additive_interpolant(lambda t: t ** 2, 3, knots=10, low=-2.0, high=2.0)
    with torch.no_grad():
        err = float((sq(x)[:, 0] - (x ** 2).sum(1)).abs().max())
    assert 0.5 * 3 * 2 * 0.4 ** 2 / 8 < err <= 3 * 2 * 0.4 ** 2 / 8 + 1e-12
    with pytest.raises(ValueError, match="low < high"):
        ft.additive_interpolant(torch.sin, 2, 4, low=1.0, high=1.0)


def test_data_anchored_features_put_every_kink_on_the_data():
    x = torch.randn(50, 6, dtype=F64)
    w, b = ft.sample_relu_features(6, 200, seed=0, bias_scale="data", anchors=x)
    pre = x @ w.T + b                         # each column vanishes at its anchor point
    assert float(pre.abs().min(dim=0).values.max()) < 1e-12
    w2, b2 = ft.sample_relu_features(6, 200, seed=0, bias_scale="data", anchors=x)
    assert torch.equal(b, b2)
    net = ft.fit_random_features(x, x[:, 0] ** 2, 30, seed=1, bias_scale="data")
    assert net.width == 30
    with pytest.raises(ValueError, match="anchors"):
        ft.sample_relu_features(6, 10, bias_scale="data")
    with pytest.raises(ValueError, match="one of"):
        ft.sample_relu_features(6, 10, bias_scale="points", anchors=x)


def test_apply_in_chunks_matches_one_call_and_validates():
    x = torch.randn(1001, 3, dtype=F64)
    net = ft.fit_random_features(x, x.sum(1), 16, seed=0)
    full = torch.relu(x @ net.W.T + net.b) @ net.coef + net.intercept
    assert torch.allclose(mo.apply_in_chunks(lambda z: torch.relu(z @ net.W.T + net.b) @ net.coef
                                             + net.intercept, x, chunk=100), full, atol=1e-13)
    assert torch.allclose(net.predict(x), full[:, 0], atol=1e-13)
    with pytest.raises(ValueError, match="chunk"):
        mo.apply_in_chunks(torch.sin, x, chunk=0)
    with pytest.raises(ValueError, match="last dimension 3"):
        net.predict(torch.zeros(4, 2, dtype=F64))

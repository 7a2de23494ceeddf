import math

import pytest
import torch

import moe_lib as ml
from moe_lib import fitting as ft
from moe_lib import geometry as geo
from moe_lib.constructions import p2_shallow as p2s
from moe_lib.constructions import wiring as wi
from moe_lib.experiments import p2_shallow as x2s

F64 = torch.float64


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def s2():
    """S^2 in R^5 with the 6 rotated axis caps: a set-up the chapters do not use."""
    M = geo.Sphere(2, 5, seed=11)
    C = geo.rotated_axis_centres(M, seed=2)
    return M, C


# ---------------------------------------------------------------------------- random features

def test_gaussian_features_shapes_seed_and_centre():
    w, b = ft.gaussian_relu_features(4, 50, seed=3, bias_std=0.5)
    w2, b2 = ft.gaussian_relu_features(4, 50, seed=3, bias_std=0.5)
    assert w.shape == (50, 4) and b.shape == (50,) and torch.equal(w, w2) and torch.equal(b, b2)
    c = torch.tensor([1.0, 0.0, -2.0, 0.5], dtype=F64)
    wc, bc = ft.gaussian_relu_features(4, 50, seed=3, bias_std=0.5, centre=c)
    assert torch.equal(wc, w) and torch.allclose(bc, b - w @ c)


def test_gaussian_features_law_on_an_embedded_sphere_does_not_depend_on_D():
    # Q^T w ~ N(0, I_k): the empirical covariance of the projected weights is close to I
    for D in (6, 60):
        Q = geo.random_embedding(3, D, seed=1)
        w, _ = ft.gaussian_relu_features(D, 20000, seed=D)
        cov = (w @ Q).T @ (w @ Q) / 20000
        assert torch.allclose(cov, torch.eye(3, dtype=F64), atol=0.05)


def test_fit_gaussian_features_fits_a_smooth_function_and_validates():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 2, generator=gen, dtype=F64) * 2 - 1
    y = torch.sin(2 * x[:, 0]) * x[:, 1]
    small = ft.fit_gaussian_features(x, y, 10, seed=0)
    big = ft.fit_gaussian_features(x, y, 300, seed=0)
    assert ft.sup_error(big.predict(x), y) < 0.05 < ft.sup_error(small.predict(x), y) / 2
    assert big.predict(x).shape == (2000,)
    with pytest.raises(ValueError, match="y: expected shape"):
        ft.fit_gaussian_features(x, y[:10], 20)
    with pytest.raises(ValueError, match="bias_std"):
        ft.gaussian_relu_features(2, 10, bias_std=0.0)


# ---------------------------------------------------------------------------- targets, charts

def test_abs_power_target_values_and_lipschitz():
    f = x2s.AbsPowerTarget(torch.tensor([0.0, 2.0], dtype=F64), 1.5)
    x = torch.tensor([[1.0, 0.25], [0.0, -1.0]], dtype=F64)
    assert torch.allclose(f(x), torch.tensor([0.5 ** 1.5, 2.0 ** 1.5], dtype=F64))
    assert f.lipschitz == pytest.approx(3.0)
    with pytest.raises(ValueError, match="p >= 1"):
        x2s.AbsPowerTarget(torch.ones(2, dtype=F64), 0.5)


def test_stereographic_chart_inverts_and_is_two_lipschitz(s2):
    M, C = s2
    chart = geo.StereographicChart(M, C[3])
    x = M.sample(500, seed=4)
    x = x[x @ C[3] > -0.9]
    assert float((chart.inverse(chart(x)) - x).abs().max()) < 1e-12
    assert float(chart(C[3][None, :]).abs().max()) < 1e-15
    u = torch.randn(300, 2, dtype=F64) * 2
    assert float((torch.linalg.vector_norm(chart.inverse(u), dim=1) - 1).abs().max()) < 1e-12
    h = 1e-6 * torch.randn(300, 2, dtype=F64)
    ratio = (torch.linalg.vector_norm(chart.inverse(u + h) - chart.inverse(u), dim=1)
             / torch.linalg.vector_norm(h, dim=1))
    assert float(ratio.max()) <= 2.0 + 1e-5
    assert geo.StereographicChart.cap_image_radius(math.sqrt(2)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="chordal radius < 2"):
        geo.StereographicChart.cap_image_radius(2.0)
    with pytest.raises(ValueError, match="Sphere"):
        geo.StereographicChart(geo.FlatTorus(1, 4), torch.ones(4, dtype=F64))


def test_rotated_axis_centres_are_antipodal_unit_points_with_stable_charts():
    bases = []
    for D in (4, 9):
        M = geo.Sphere(3, D, seed=7)
        C = geo.rotated_axis_centres(M, seed=1)
        assert C.shape == (8, D)
        assert torch.allclose(torch.linalg.vector_norm(C, dim=1), torch.ones(8, dtype=F64))
        assert torch.allclose(C[0::2], -C[1::2])
        bases.append(M.tangent_basis(C[2]) @ M.Q)      # intrinsic tangent basis
    assert float((bases[0] - bases[1]).abs().max()) < 1e-12


def test_critical_points_are_equidistant_from_d_plus_one_centres(s2):
    M, C = s2
    P = x2s.critical_points(M, centre_seed=2)
    dist = torch.cdist(P, C)
    nearest = torch.sort(dist, dim=1).values[:, :3]
    assert P.shape == (8, 5) and float((nearest - nearest[:, :1]).abs().max()) < 1e-12
    circle = geo.Sphere(1, 3, seed=0)
    Pc = x2s.critical_points(circle, n_charts=6)
    dc = torch.sort(torch.cdist(Pc, circle.arc_centres(6)), dim=1).values
    assert torch.allclose(dc[:, 0], dc[:, 1])


# ---------------------------------------------------------------------------- layer 1

def test_partition_net_bumps_taus_and_blocks(s2):
    M, C = s2
    x = M.sample(3000, seed=5)
    net = p2s.fit_partition_net(x, C, 1.3, n_knots=64, division_width=96, seed=1)
    pu = geo.partition_of_unity(x, C, 1.3)
    b = net.bumps(x)
    assert float((b - pu.bumps).abs().max()) < 1e-3
    outside = torch.cdist(x, C) >= 1.3
    assert bool((b[outside] == 0).all())                  # same support, exactly
    assert float((net.tau(x) - pu.rho).abs().max()) < 1 / (3 * 6)
    block3 = net.block(5, range(5), depth=3)
    out3 = block3(x)
    assert block3.depth == 3 and out3.shape == (3000, 11)
    assert float((out3[:, :5] - x).abs().max()) == 0.0
    assert float((out3[:, 5:] - net.tau(x)).abs().max()) < 1e-12
    out2 = net.block(5, range(5), depth=2)(x)
    assert float((out2[:, 5:] - b).abs().max()) < 1e-12


def test_partition_block_reads_a_slice_and_carries_a_subset(s2):
    M, C = s2
    x = M.sample(200, seed=6)
    net = p2s.fit_partition_net(x, C, 1.3, n_knots=16, division_width=None)
    state = torch.cat([torch.randn(200, 2, dtype=F64), x, torch.randn(200, 1, dtype=F64)], dim=1)
    block = net.block(8, read=range(2, 7), carry=[0, 7], depth=2)
    out = block(state)
    assert out.shape == (200, 2 + 6)
    assert float((out[:, :2] - state[:, [0, 7]]).abs().max()) == 0.0
    assert float((out[:, 2:] - net.bumps(x)).abs().max()) < 1e-12


def test_partition_net_validates(s2):
    M, C = s2
    x = M.sample(100, seed=6)
    with pytest.raises(ValueError, match="unit sphere"):
        p2s.fit_partition_net(2 * x, C, 1.3)
    with pytest.raises(ValueError, match="chordal radius"):
        p2s.fit_partition_net(x, C, 2.5)
    with pytest.raises(ValueError, match="covering"):
        p2s.fit_partition_net(x, C[:1], 0.5)
    net = p2s.fit_partition_net(x, C, 1.3, n_knots=8, division_width=None)
    with pytest.raises(ValueError, match="division"):
        net.block(5, range(5), depth=3)
    with pytest.raises(ValueError, match="division"):
        net.tau(x)
    with pytest.raises(ValueError, match="read: expected 5"):
        net.block(5, range(4), depth=2)
    with pytest.raises(ValueError, match="coordinates in"):
        net.block(5, range(2, 7), depth=2)


# ---------------------------------------------------------------------------- gates and experts

def test_gates():
    gate = wi.argmax_gate(6, [5, 1, 3])
    s = torch.randn(100, 6, dtype=F64)
    assert torch.equal(gate(s).idx[:, 0], torch.argmax(s[:, [5, 1, 3]], dim=1))
    assert bool((wi.constant_gate(6, 4)(s).idx == 0).all())
    with pytest.raises(ValueError, match="distinct"):
        wi.argmax_gate(6, [1, 1])


def _rf_net(d_in, d_out, width, seed):
    x = torch.randn(300, d_in, dtype=F64)
    y = torch.randn(300, d_out, dtype=F64) if d_out > 1 else torch.randn(300, dtype=F64)
    return ft.fit_random_features(x, y, width, seed=seed)


def test_chart_expert_computes_g_of_psi_and_carries():
    psi, g = _rf_net(3, 2, 20, 1), _rf_net(2, 1, 15, 2)
    s = torch.randn(50, 7, dtype=F64)
    net = p2s.chart_expert(7, [1, 2, 4], psi, g, carry=[0, 6])
    out = net(s)
    assert net.depth == 3 and out.shape == (50, 3)
    assert float((out[:, :2] - s[:, [0, 6]]).abs().max()) == 0.0
    assert float((out[:, 2] - g.predict(psi.predict(s[:, [1, 2, 4]]))).abs().max()) < 1e-12
    with pytest.raises(ValueError, match="psi, g"):
        p2s.chart_expert(7, [1, 2], psi, g)


def test_linear_chart_expert_merges_the_chart():
    g = _rf_net(2, 1, 12, 3)
    A, a = torch.randn(2, 4, dtype=F64), torch.randn(2, dtype=F64)
    s = torch.randn(40, 5, dtype=F64)
    net = p2s.linear_chart_expert(5, range(4), A, a, g, carry=[4])
    out = net(s)
    assert net.depth == 2 and out.shape == (40, 2)
    assert float((out[:, 0] - s[:, 4]).abs().max()) == 0.0
    assert float((out[:, 1] - g.predict(s[:, :4] @ A.T + a)).abs().max()) < 1e-12
    with pytest.raises(ValueError, match="input dimension 3"):
        p2s.linear_chart_expert(5, range(4), torch.randn(3, 4, dtype=F64),
                               torch.zeros(3, dtype=F64), g)


def test_shallow_moe_routes_by_tau_and_validates():
    block = ml.MLP(3, 5, 8, depth=2, dtype=F64)
    experts = [ml.MLP(5, 1, 4, depth=2, dtype=F64) for _ in range(2)]
    net = p2s.shallow_moe(block, experts, [3, 4])
    x = torch.randn(60, 3, dtype=F64)
    out, paths = net.forward_with_paths(x)
    mid = block(x)
    assert torch.equal(paths[:, 1], torch.argmax(mid[:, 3:], dim=1))
    assert bool((paths[:, 0] == 0).all()) and len(net.layers) == 2
    with pytest.raises(ValueError, match="experts\\[0\\]"):
        p2s.shallow_moe(block, [ml.MLP(4, 1, 4, dtype=F64)], [3])


# ---------------------------------------------------------------------------- whole constructions

def _s2_problem(D, seed=4):
    M = geo.Sphere(2, D, seed=seed)
    C0 = geo.rotated_axis_centres(geo.Sphere(2), seed=3)
    return x2s.SphereProblem(M, C0, torch.tensor([0.0, 0.6, 0.8], dtype=F64), 1.5)


def test_sphere_problem_unpacks_and_embeds():
    p = x2s.sphere_problem(2, 7, embed_seed=1, centre_seed=2)
    M, C, f = p
    assert C.shape == (6, 7) and p.n_charts == 6
    assert torch.allclose(C @ M.Q, p.centres_intrinsic)
    y = geo.Sphere(2).sample(20, seed=3)
    assert torch.allclose(f(M.embed(y)), p.intrinsic_target(y))
    assert x2s.sphere_problem(1, 3).n_charts == 4


def test_theorem_4_8_on_s2_meets_the_proof_checks():
    problem = _s2_problem(5)
    M = problem.manifold
    con = p2s.build_theorem_4_8(problem, 1.3, 48, n_knots=32, division_width=64, seed=1)
    x = torch.cat([M.sample(400, seed=9), x2s.critical_points(M, centre_seed=3)])
    res = x2s.evaluate(con, x)
    assert res["score_err"] < 1 / (3 * 6)
    assert bool(res["valid"].all()) and bool(res["in_ball"].all())
    assert res["piece_gap"] < 1e-10 and res["carry_err"] == 0.0
    assert float((res["error"] - res["bound"]).max()) <= 1e-9
    assert res["lipschitz"] == pytest.approx(3.0)
    rows = x2s.parameter_table(con.network)
    assert rows[0]["stored"] + rows[1]["stored"] == con.network.stored_params()
    assert rows[0]["active"] + rows[1]["active"] == con.network.active_params()
    assert all(r["active_nonzero"] <= r["active"] for r in rows)


def test_corollary_4_9_error_is_the_chart_space_error_and_independent_of_D():
    errs = []
    for D in (3, 9):
        problem = _s2_problem(D)
        con = p2s.build_corollary_4_9(problem, 1.3, 40, n_knots=32, seed=2)
        res = x2s.evaluate(con, problem.manifold.sample(300, seed=8))
        assert con.network.layers[0].experts[0].depth == 2
        assert con.network.layers[1].experts[0].depth == 2
        assert bool(res["valid"].all()) and res["score_err"] < 1 / 18
        assert float((res["error"] - res["chart_fit_err"]).abs().max()) < 1e-10
        errs.append(float(res["error"].max()))
    assert abs(errs[0] - errs[1]) < 1e-10
    with pytest.raises(ValueError, match="SphereProblem"):
        p2s.build_corollary_4_9(problem.manifold, 1.3, 40)


def test_sweeps_run_on_a_tiny_grid():
    sw = x2s.theorem_4_8_sweep(2, [3, 6], [8, 16], 1.3, 60, n_knots=16, division_width=32,
                              g_samples_per_feature=10, psi_samples_per_feature=6)
    assert set(sw["error"]) == {3, 6} and len(sw["error"][3]) == 2
    assert sw["valid"] == 1.0 and sw["bound_slack"] <= 1e-9 and sw["n_experts"] == 6
    assert sw["dense_width"][6][0] == round((x2s.effective_expert_params(6, 2, 8) - 1) / 8)
    co = x2s.corollary_4_9_sweep(2, [3, 6], [8, 16], 1.3, 60, n_knots=16)
    assert co["gap"] < 1e-10 and co["across_D"] < 1e-10 and co["valid"] == 1.0
    with pytest.raises(ValueError, match="at least 2 widths"):
        x2s.corollary_4_9_sweep(2, [3], [8], 1.3, 10)


def test_effective_expert_params_formula():
    assert x2s.effective_expert_params(10, 2, 7) == (10 * 7 + 7 + 7 * 2 + 2) + (2 * 7 + 7 + 7 + 1)


# ---------------------------------------------------------------------------- routing lemma

def test_routing_lemma_helpers_on_hand_made_rho():
    rho = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype=F64)
    assert x2s.valid_route_fraction(rho, rho) == 1.0
    bad = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0, 0], [0, 0, 1.0]], dtype=F64)
    assert x2s.valid_route_fraction(rho, bad) == pytest.approx(2 / 3)
    assert x2s.adversarial_threshold(rho) == pytest.approx(0.25)
    assert x2s.adversarial_threshold(rho[2:]) == math.inf
    adv = x2s.perturbed_scores(rho, 0.3, "adversarial")
    assert float((adv - rho).abs().max()) == pytest.approx(0.3)
    assert x2s.valid_route_fraction(rho, adv) == pytest.approx(2 / 3)     # row 0 misrouted
    assert x2s.valid_route_fraction(rho, x2s.perturbed_scores(rho, 0.24, "adversarial")) == 1.0
    uni = x2s.perturbed_scores(rho, 0.1, "uniform", seed=1)
    assert float((uni - rho).abs().max()) <= 0.1
    rows = x2s.routing_table(rho, [0.1, 0.3])
    assert [r["kind"] for r in rows] == ["uniform", "uniform", "adversarial", "adversarial"]
    assert rows[3]["valid"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="kind"):
        x2s.perturbed_scores(rho, 0.1, "gaussian")
    with pytest.raises(ValueError, match="size"):
        x2s.perturbed_scores(rho, -0.1)
    with pytest.raises(ValueError, match="rows"):
        x2s.valid_route_fraction(rho, rho[:2])


def test_one_layer_moe_with_a_nonlinear_router_equals_the_two_layer_network():
    problem = _s2_problem(6)
    con = p2s.build_corollary_4_9(problem, 1.3, 24, n_knots=16, seed=0)
    one = p2s.one_layer_moe(con)
    x = problem.manifold.sample(300, seed=2)
    assert float((one(x) - con.network(x)).abs().max()) < 1e-12
    assert one.router.net.depth == 2 and one.d_in == 6
    con3 = p2s.build_theorem_4_8(problem, 1.3, 16, n_knots=16, division_width=32, seed=0)
    one3 = p2s.one_layer_moe(con3, router_depth=3)
    routes = one3.route(x).idx
    assert torch.equal(routes[:, 0], con3.network.forward_with_paths(x)[1][:, 1])


def test_ball_points_grid_and_embedded_chart():
    u = geo.ball_points(4000, 3, 0.7, seed=1)
    norms = torch.linalg.vector_norm(u, dim=1)
    assert float(norms.max()) <= 0.7 and float((norms < 0.7 / 2).double().mean()) == pytest.approx(
        1 / 8, abs=0.03)                                     # volume fraction of the inner ball
    g = geo.ball_grid(2, 1.0, 5)
    assert g.shape[0] == 13 and float(torch.linalg.vector_norm(g, dim=1).max()) <= 1.0
    M0, M = geo.Sphere(2), geo.Sphere(2, 7, seed=3)
    c0 = geo.rotated_axis_centres(M0, seed=1)[0]
    chart0 = geo.TangentChart(M0, c0, 1.2)
    chart = geo.EmbeddedChart(chart0, M.Q)
    y = M0.sample(50, seed=2)
    y = y[torch.linalg.vector_norm(y - c0, dim=1) < 1.2]
    x = M.embed(y)
    assert float((chart(x) - chart0(y)).abs().max()) < 1e-14
    assert float((chart.inverse(chart(x)) - x).abs().max()) < 1e-12
    W, b = chart.affine()
    assert float((x @ W.T + b - chart(x)).abs().max()) < 1e-14

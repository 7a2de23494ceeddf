import math

import pytest
import torch

from moe_lib import analysis as an
from moe_lib import geometry as geo
from moe_lib import models as mo

F64 = torch.float64


def test_random_embedding_is_orthonormal_and_seeded():
    q = geo.random_embedding(3, 11, seed=5)
    assert q.shape == (11, 3) and q.dtype == F64
    assert torch.allclose(q.T @ q, torch.eye(3, dtype=F64), atol=1e-14)
    assert torch.equal(q, geo.random_embedding(3, 11, seed=5))
    assert not torch.equal(q, geo.random_embedding(3, 11, seed=6))
    sq = geo.random_embedding(4, 4, seed=1)
    assert torch.allclose(sq @ sq.T, torch.eye(4, dtype=F64), atol=1e-14)


def test_random_embedding_rejects_small_D():
    with pytest.raises(ValueError, match="D >= k = 3"):
        geo.random_embedding(3, 2)


@pytest.mark.parametrize("manifold", [geo.Sphere(1, 5, 0), geo.Sphere(2, 7, 1), geo.Sphere(4, 9, 2),
                                      geo.FlatTorus(2, 6, 3), geo.FlatTorus(3, 10, 4),
                                      geo.Sphere(2)], ids=repr)
def test_samples_lie_on_the_manifold_and_tangent_bases_are_tangent(manifold):
    x = manifold.sample(500, seed=2)
    assert x.shape == (500, manifold.D)
    assert float(manifold.residual(x).max()) < 1e-13
    assert torch.equal(x, manifold.sample(500, seed=2))
    c = x[0]
    a = manifold.tangent_basis(c)
    assert a.shape == (manifold.d, manifold.D)
    assert torch.allclose(a @ a.T, torch.eye(manifold.d, dtype=F64), atol=1e-13)
    # tangent: a curve through c leaves M to second order only along the basis
    h = 1e-5
    t = torch.randn(1, manifold.d, dtype=F64) * h
    p = manifold.lift(c, t)[0]
    assert float(manifold.residual(p[None])[0]) < 1e-13
    assert torch.allclose((p - c) @ a.T, t[0], atol=1e-15)
    assert float(torch.linalg.vector_norm(p - c - t[0] @ a)) < 10 * h ** 2


def test_sphere_sampling_is_uniform_in_moments():
    y = geo.Sphere(2).sample(200000, seed=0)
    assert float(y.mean(0).abs().max()) < 0.01  # E y = 0
    assert torch.allclose(y.T @ y / y.shape[0], torch.eye(3, dtype=F64) / 3, atol=0.01)  # E yy^T = I/3


def test_torus_angles_round_trip_and_norm():
    t = geo.FlatTorus(2, D=9, seed=1)
    a = torch.tensor([[0.1, -2.0], [3.0, 1.5]], dtype=F64)
    x = t.from_angles(a)
    assert torch.allclose(torch.linalg.vector_norm(x, dim=1), torch.full((2,), math.sqrt(2), dtype=F64))
    assert torch.allclose(t.angles(x), a, atol=1e-14)


def test_circle_chart_coordinate_is_sine_of_angle():
    s = geo.Sphere(1, D=6, seed=3)
    theta = torch.linspace(-1.2, 1.2, 7, dtype=F64)
    x = s.from_angles(0.4 + theta)
    chart = geo.TangentChart(s, s.from_angles(torch.tensor([0.4], dtype=F64))[0], radius=1.5)
    assert torch.allclose(chart.coords(x)[:, 0], torch.sin(theta), atol=1e-14)
    assert torch.allclose(s.angles(x), 0.4 + theta, atol=1e-14)


def test_centres_and_their_cover_radii():
    s3 = geo.Sphere(3, D=12, seed=0)
    c = s3.axis_centres()
    assert c.shape == (8, 12)
    assert torch.allclose(s3.intrinsic(c[:2]), torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]], dtype=F64),
                          atol=1e-14)
    assert s3.axis_cover_radius() == pytest.approx(1.0)
    worst = s3.embed(torch.full((1, 4), 0.5, dtype=F64))
    assert geo.cover_radius(worst, c) == pytest.approx(1.0)
    x = s3.sample(20000, seed=1)
    assert geo.cover_radius(x, c) <= 1.0 + 1e-12
    circle = geo.Sphere(1)
    arcs = circle.arc_centres(5)
    assert geo.cover_radius(circle.sample(20000, 0), arcs) <= 2 * math.sin(math.pi / 10) + 1e-12
    torus = geo.FlatTorus(2, D=5)
    g = torus.grid_centres(4)
    assert g.shape == (16, 5)
    assert geo.cover_radius(torus.sample(20000, 0), g) <= 2 * math.sqrt(2) * math.sin(math.pi / 8) + 1e-12


def test_centre_helpers_validate():
    with pytest.raises(ValueError, match="circle S\\^1"):
        geo.Sphere(2).arc_centres(4)
    with pytest.raises(ValueError, match="norm 1"):
        geo.Sphere(2).tangent_basis(torch.tensor([2.0, 0.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="last dimension 5"):
        geo.Sphere(1, D=5).tangent_basis(torch.zeros(3, dtype=F64))


def test_bump_values_and_support():
    t = torch.tensor([-1.5, -1.0, 0.0, 0.5, 0.999, 1.0, 2.0], dtype=F64)
    b = geo.bump(t)
    assert b[2] == pytest.approx(math.exp(-1))
    assert b[3] == pytest.approx(math.exp(-1 / 0.75))
    assert b[0] == 0 and b[1] == 0 and b[5] == 0 and b[6] == 0 and b[4] > 0
    assert torch.equal(geo.log_bump(t)[5:], torch.tensor([-math.inf, -math.inf], dtype=F64))


def test_partition_of_unity_sums_to_one_and_vanishes_outside_caps():
    torus = geo.FlatTorus(2, D=7, seed=2)
    c = torus.grid_centres(3)
    x = torus.sample(5000, seed=4)
    pu = geo.partition_of_unity(x, c, 1.6)
    assert pu.rho.shape == (5000, 9) and pu.n_uncovered == 0
    assert float((pu.rho.sum(1) - 1).abs().max()) < 1e-14
    far = torch.cdist(x, c) >= 1.6
    assert bool((pu.rho[far] == 0).all()) and bool((pu.bumps[far] == 0).all())
    assert torch.allclose(pu.rho, pu.bumps / pu.total[:, None], atol=1e-14)


def test_partition_of_unity_reports_uncovered_points_and_per_cap_radii():
    x = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.99, 0.0]], dtype=F64)
    c = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=F64)
    pu = geo.partition_of_unity(x, c, torch.tensor([1.0, 0.5], dtype=F64))
    assert pu.uncovered.tolist() == [False, True, False]
    assert pu.rho[1].tolist() == [0.0, 0.0] and pu.total[1] == 0
    assert pu.rho[0].tolist() == [1.0, 0.0]  # ||x - c_2|| = 1 >= 0.5
    assert float(pu.rho[2].sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one radius or 2"):
        geo.partition_of_unity(x, c, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="> 0"):
        geo.partition_of_unity(x, c, 0.0)
    with pytest.raises(ValueError, match="last dimension 2"):
        geo.partition_of_unity(x, torch.zeros(2, 3, dtype=F64), 1.0)


def test_partition_of_unity_survives_underflow_of_every_bump():
    # ||x - c|| / r so close to 1 that exp(-1/(1-t^2)) underflows, yet x is inside the cap
    x = torch.tensor([[1.0 - 1e-5, 0.0]], dtype=F64)
    pu = geo.partition_of_unity(x, torch.zeros(1, 2, dtype=F64), 1.0)
    assert pu.total[0] == 0 and pu.n_uncovered == 0 and pu.rho[0, 0] == 1.0


@pytest.mark.parametrize("manifold", [geo.Sphere(2, D=9, seed=1), geo.FlatTorus(2, D=6, seed=0)],
                         ids=repr)
def test_tangent_chart_maps_cap_into_unit_cube_and_inverts(manifold):
    c = manifold.sample(1, seed=9)[0]
    chart = geo.TangentChart(manifold, c, radius=1.3)
    x = manifold.sample(4000, seed=3)
    x = x[chart.in_domain(x)]
    u = chart(x)
    assert bool(((u >= 0) & (u <= 1)).all())
    assert torch.allclose(chart.inverse(u), x, atol=1e-12)
    w, b = chart.affine()
    assert torch.allclose(x @ w.T + b, u, atol=1e-14)
    net = mo.affine_relu_mlp(w, b)
    assert net.width == 2 * manifold.d
    with torch.no_grad():
        assert float((net(x) - u).abs().max()) < 1e-13


def test_lift_rejects_points_outside_the_injectivity_domain():
    s = geo.Sphere(2)
    with pytest.raises(ValueError, match="\\|\\|t\\|\\| <= 1"):
        s.lift(torch.tensor([0.0, 0.0, 1.0], dtype=F64), torch.tensor([[0.8, 0.8]], dtype=F64))
    with pytest.raises(ValueError, match="\\|t_j\\| <= 1"):
        t = geo.FlatTorus(2)
        t.lift(t.grid_centres(1)[0], torch.tensor([[1.5, 0.0]], dtype=F64))


def test_tangent_charts_one_per_centre():
    s = geo.Sphere(3, D=8, seed=0)
    charts = geo.tangent_charts(s, s.axis_centres(), 1.2)
    assert len(charts) == 8 and all(ch.radius == 1.2 and ch.d == 3 for ch in charts)


def test_lower_lipschitz_of_known_maps():
    x = torch.linspace(0, 1, 101, dtype=F64)[:, None]
    assert geo.lower_lipschitz(x, 3 * x) == pytest.approx(3.0)
    # y = x^2 on [0.5, 1]: min slope of chords is 2 * 0.5 + 0.01 (neighbouring points)
    x = torch.linspace(0.5, 1, 51, dtype=F64)[:, None]
    assert geo.lower_lipschitz(x, x ** 2, chunk=7) == pytest.approx(1.01)
    # not injective: y = |x| on [-1, 1] has a colliding pair
    x = torch.linspace(-1, 1, 21, dtype=F64)[:, None]
    assert geo.lower_lipschitz(x, x.abs()) == 0.0
    assert geo.lower_lipschitz(x[:1], x[:1]) == math.inf
    with pytest.raises(ValueError, match="21 rows"):
        geo.lower_lipschitz(x, x[:3])


def test_circle_tangent_projection_lower_lipschitz_is_cos_alpha():
    s = geo.Sphere(1, D=4, seed=0)
    for alpha in (0.3, 1.0):
        x = s.from_angles(torch.linspace(-alpha, alpha, 801, dtype=F64))
        chart = geo.TangentChart(s, s.from_angles(torch.zeros(1, dtype=F64))[0], 2.0)
        assert geo.lower_lipschitz(x, chart.coords(x)) == pytest.approx(math.cos(alpha), abs=2e-3)


def test_max_chart_radius_on_the_circle():
    s = geo.Sphere(1)
    x = s.from_angles(torch.linspace(-math.pi, math.pi, 721, dtype=F64)[:-1])
    c = x[360]  # angle 0
    r = geo.max_chart_radius(x, c, s.tangent_basis(c), threshold=0.5)
    # cos(alpha) >= 1/2 <=> alpha <= pi/3 <=> chord radius 2 sin(alpha/2) <= 1
    assert r == pytest.approx(1.0, abs=0.02)
    assert geo.max_chart_radius(x[350:371], c, s.tangent_basis(c), 0.5) == math.inf


def test_greedy_chart_cover_covers_and_validates():
    s = geo.Sphere(1)
    x = s.from_angles(torch.linspace(0, 2 * math.pi, 361, dtype=F64)[:-1])
    bases = torch.stack([s.tangent_basis(p) for p in x])
    cover = geo.greedy_chart_cover(x, bases, threshold=math.cos(1.0), candidates=range(0, 360, 2))
    assert cover["n_charts"] >= math.ceil(math.pi / 1.0)
    inside = torch.cdist(x, x[cover["centres"]]) < torch.tensor(cover["radii"], dtype=F64)
    assert bool(inside.any(dim=1).all())
    capped = geo.greedy_chart_cover(x, bases, 0.5, candidates=range(0, 360, 2), max_radius=0.3)
    assert capped["n_charts"] > cover["n_charts"]
    with pytest.raises(ValueError, match="one basis per point"):
        geo.greedy_chart_cover(x, bases[:5], 0.5)
    with pytest.raises(ValueError, match="cover every point"):
        geo.greedy_chart_cover(x, bases, 0.5, candidates=[0], max_radius=0.1)


@pytest.mark.parametrize("alpha", [0.6, 1.0, 1.4])
def test_greedy_curve_cover_of_the_circle_is_ceil_pi_over_alpha(alpha):
    s = geo.Sphere(1, D=3, seed=0)
    x = s.from_angles(torch.linspace(0, 2 * math.pi, 361, dtype=F64)[:-1])
    bases = torch.stack([s.tangent_basis(p) for p in x])
    cover = geo.greedy_curve_cover(x, bases, math.cos(alpha), candidates=range(0, 360, 2))
    assert cover["n_charts"] == math.ceil(math.pi / alpha)
    covered = torch.zeros(360, dtype=torch.bool)
    for a, b in cover["arcs"]:
        idx = torch.arange(a, b + 1 if b >= a else b + 361) % 360
        covered[idx] = True
    assert bool(covered.all())


def test_greedy_curve_cover_single_chart_and_errors():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=F64)
    bases = torch.tensor([[[1.0, 0.0]]] * 3, dtype=F64)
    assert geo.greedy_curve_cover(x, bases, 0.5)["n_charts"] == 1
    s = geo.Sphere(1)
    xc = s.from_angles(torch.linspace(0, 2 * math.pi, 61, dtype=F64)[:-1])
    bc = torch.stack([s.tangent_basis(p) for p in xc])
    with pytest.raises(ValueError, match="cover the curve"):
        geo.greedy_curve_cover(xc, bc, 0.5, candidates=[0, 1], max_radius=0.5)
    with pytest.raises(ValueError, match="over sample 0"):
        geo.greedy_curve_cover(xc, bc, 0.5, candidates=[30], max_radius=0.5)


def test_one_sided_differences_are_exact_on_polynomials_and_see_kinks():
    def cubic(t):
        return 2 * t ** 3 - t

    h = [1e-1, 1e-2]
    for side in ("left", "right"):
        assert torch.allclose(an.one_sided_difference(cubic, 0.3, h, 3, side),
                              torch.full((2,), 12.0, dtype=F64), atol=1e-6)
    # first derivative of sin: O(h) error on either side
    r = an.one_sided_difference(torch.sin, 0.0, [1e-3, 1e-4], 1, "right")
    assert torch.allclose(r, torch.ones(2, dtype=F64), atol=1e-6)
    # t|t| at 0: second one-sided differences are +2 and -2
    def g(t):
        return t * t.abs()

    assert an.one_sided_difference(g, 0.0, 1e-3, 2, "right").item() == pytest.approx(2.0)
    assert an.one_sided_difference(g, 0.0, 1e-3, 2, "left").item() == pytest.approx(-2.0)
    assert an.one_sided_difference(g, 0.0, [1e-2], 0, "left").item() == pytest.approx(-1e-4)


def test_one_sided_difference_validates():
    with pytest.raises(ValueError, match="left"):
        an.one_sided_difference(torch.sin, 0.0, 1e-2, 1, "both")
    with pytest.raises(ValueError, match="steps > 0"):
        an.one_sided_difference(torch.sin, 0.0, [1e-2, -1e-3], 1, "left")
    with pytest.raises(ValueError, match="integer"):
        an.one_sided_difference(torch.sin, 0.0, 1e-2, 1.5, "left")


def test_sphere_tangent_basis_is_stable_at_axis_centres_and_equal_across_D():
    s = geo.Sphere(3)
    a = s.tangent_basis(torch.tensor([0.0, -1.0, 0.0, 0.0], dtype=F64))
    assert torch.equal(a.abs(), torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=F64))
    # embedded centres carry rounding noise; the intrinsic basis must not depend on it
    bases = []
    for D in (4, 9, 40):
        m = geo.Sphere(3, D, seed=D)
        c = m.axis_centres()
        bases.append(torch.stack([m.tangent_basis(ci) @ m.Q for ci in c]))
    assert torch.allclose(bases[0], bases[1], atol=1e-12) and torch.allclose(bases[0], bases[2], atol=1e-12)
    # continuity away from ties: a tiny move of the centre moves the basis a tiny bit
    y = torch.tensor([0.6, 0.48, 0.64, 0.0], dtype=F64)
    z = y + 1e-9 * torch.tensor([0.0, 1.0, -0.75, 0.1], dtype=F64)
    assert float((s.tangent_basis(y) - s.tangent_basis(z / z.norm())).abs().max()) < 1e-8

import math

import pytest
import torch

from moe_lib import geometry as geo
from moe_lib.experiments import p2_geometry as x2g


def test_kink_target_is_the_sum_of_profiles_and_c1_at_the_kink():
    x = torch.tensor([[0.3, 1.0], [-1.0, 0.5]], dtype=torch.float64)
    assert torch.allclose(x2g.kink_target(x), x2g.kink_profile(x).sum(1))
    assert x2g.kink_target(x)[0].item() == pytest.approx(0.49)
    h = 1e-6   # derivative 2 ReLU(t - 0.3) is continuous: both one-sided slopes vanish at the kink
    t = torch.tensor([x2g.KINK - h, x2g.KINK, x2g.KINK + h], dtype=torch.float64)
    g = x2g.kink_profile(t)
    assert abs((g[2] - g[1]) / h) < 1e-5 and abs((g[1] - g[0]) / h) < 1e-5


def test_cube_points_in_the_cube_and_reproducible():
    a = x2g.cube_points(500, 3, torch.Generator().manual_seed(1))
    b = x2g.cube_points(500, 3, torch.Generator().manual_seed(1))
    assert a.shape == (500, 3) and a.dtype == torch.float64
    assert torch.equal(a, b) and a.abs().max() <= 1


@pytest.mark.parametrize("name", ["S^1", "S^2", "T^2", "S^3"])
def test_atlas_problem_radius_is_a_covering_radius(name):
    radii = {"S^1": 1.0, "S^2": 1.2, "T^2": 1.25, "S^3": 1.2}
    M, C, r, R = x2g.atlas_problem(name, 8, 0, radii)
    assert r == radii[name] and R < r
    assert geo.cover_radius(M.sample(4000, 0), C) <= R + 1e-12


def test_atlas_problem_rejects_unknown_manifold():
    with pytest.raises(ValueError, match="name"):
        x2g.atlas_problem("K^2", 8, 0, {})


def test_arcs_needed_is_ceil_pi_over_alpha():
    circle = geo.Sphere(1, 4, 0)
    ring = circle.from_angles(torch.linspace(-math.pi, math.pi, 4001, dtype=torch.float64)[:-1])
    for a in (0.3, 0.7, 1.2):
        assert x2g.arcs_needed(a, ring, circle) == math.ceil(math.pi / a)


def test_ellipse_points_and_unit_tangents():
    Q = geo.random_embedding(2, 5, 0)
    x, t = x2g.ellipse(0.5, 64, Q)
    assert x.shape == (64, 5) and t.shape == (64, 1, 5)
    y = x @ Q
    assert torch.allclose(y[:, 0] ** 2 + (y[:, 1] / 0.5) ** 2, torch.ones(64, dtype=torch.float64))
    assert torch.allclose(torch.linalg.vector_norm(t, dim=2), torch.ones(64, 1, dtype=torch.float64))


def test_audit_curve_cover_on_a_greedy_cover_and_a_bad_one():
    Q = geo.random_embedding(2, 4, 0)
    x, t = x2g.ellipse(1.0, 200, Q)
    cover = geo.greedy_curve_cover(x, t, 0.5, candidates=range(0, 200, 4))
    au = x2g.audit_curve_cover(x, t, cover)
    assert au["covered"] == 1.0 and au["min_ell"] >= 0.5 and au["n_charts"] == cover["n_charts"]
    # one chart whose ball is the whole circle: the tangent projection folds it, l ~ 0
    bad = x2g.audit_curve_cover(x, t, {"centres": [0], "radii": [3.0]})
    assert bad["covered"] == 1.0 and bad["min_ell"] < 0.05
    with pytest.raises(ValueError, match="cover"):
        x2g.audit_curve_cover(x, t, {"centres": [0, 1], "radii": [1.0]})


def test_chart_pullback_in_its_own_chart_is_the_profile():
    circle = geo.Sphere(1, 6, 0)
    p = circle.from_angles(torch.tensor([0.3], dtype=torch.float64))[0]
    v = circle.tangent_basis(p)[0]
    F = x2g.ChartPullback(lambda s: s.abs(), circle, geo.TangentChart(circle, p, 1.0), p, v)
    t = torch.linspace(-0.5, 0.5, 11, dtype=torch.float64)
    assert torch.allclose(F(t), t.abs(), atol=1e-12)


def test_stereo_problem_targets_are_tan_half_angle():
    circle, (x, s, xv, sv, xt, st) = x2g.stereo_problem(8, 0, 1.0, 50, 10, 20)
    assert x.shape == (50, 8) and s.shape == (50,) and xt.shape == (20, 8)
    c = circle.from_angles(torch.zeros(1, dtype=torch.float64))[0]
    theta = torch.arccos((x @ c).clamp(-1, 1))
    assert torch.allclose(s.abs(), torch.tan(theta / 2), atol=1e-12)
    assert theta.max() <= 1.0 + 1e-12


def test_slope_spread_test_passes_equal_groups_and_flags_a_shift():
    gen = torch.Generator().manual_seed(0)
    same = {D: (-1.5 + 0.1 * torch.randn(8, generator=gen, dtype=torch.float64)).tolist()
            for D in (8, 32, 128)}
    res = x2g.slope_spread_test(same)
    assert res["spread"] <= res["allowance"]
    assert res["q"] == pytest.approx(3.566, abs=0.01)   # q_0.95(3, 21): tables 3.578 (df 20), 3.532 (df 24)
    shifted = dict(same)
    shifted[128] = [v + 1.0 for v in same[128]]
    res = x2g.slope_spread_test(shifted)
    assert res["spread"] > res["allowance"]
    with pytest.raises(ValueError, match="slopes"):
        x2g.slope_spread_test({8: [1.0, 2.0], 32: [1.0]})


def test_slope_with_se_exact_power_law_and_noisy():
    x = [16, 32, 64, 128]
    slope, se = x2g.slope_with_se(x, [v ** -0.5 for v in x])
    assert slope == pytest.approx(-0.5) and se == pytest.approx(0.0, abs=1e-12)
    slope, se = x2g.slope_with_se(x, [1.0, 0.5, 0.3, 0.1])
    assert slope < 0 and se > 0
    with pytest.raises(ValueError, match="points"):
        x2g.slope_with_se([1, 2], [1, 2])


def test_range_allowance_scales_with_the_standard_errors():
    a, q = x2g.range_allowance([0.1, 0.1, 0.1], df=6)
    assert q == pytest.approx(4.34, abs=0.01)     # q_0.95(3, 6), tables
    assert a == pytest.approx(q * 0.1)
    with pytest.raises(ValueError, match="ses"):
        x2g.range_allowance([0.1], df=6)


def test_equal_effective_windows_align_and_reject_short_grids():
    widths = [16, 23, 32, 45, 64, 91, 128, 181, 256]
    win = x2g.equal_effective_windows(widths, {8: 0.441, 32: 0.216, 128: 0.109})
    assert win == {8: [0, 1, 2, 3, 4], 32: [2, 3, 4, 5, 6], 128: [4, 5, 6, 7, 8]}
    with pytest.raises(ValueError, match="fewer than 2 grid points"):
        x2g.equal_effective_windows([16, 32], {8: 0.441, 128: 0.109})
    with pytest.raises(ValueError, match="widths: expected an increasing list"):
        x2g.equal_effective_windows([32, 16], {8: 0.5})

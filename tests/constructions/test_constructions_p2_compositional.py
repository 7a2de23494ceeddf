import numpy as np
import pytest
import torch

import moe_lib as ml
from moe_lib import analysis as an
from moe_lib.constructions import p2_compositional as p2c
from moe_lib.constructions import wiring as wi


@pytest.fixture(autouse=True)
def _seed():
    ml.seed_everything(0)


def wavy(l, i, z):  # noqa: E741 -- sub-functions that differ across l and i, unlike the chapter's
    return np.sin(l * z + i) + 0.1 * i * z ** 2


def interp_reference(f, x, E, m):
    """Each coordinate through np.interp of its cell's sub-function: what the nets must compute."""
    cells = p2c.cell_index(x, E)
    out = np.empty_like(x)
    for l in range(x.shape[1]):  # noqa: E741
        for i in range(1, E + 1):
            t = (i - 1) + np.arange(m + 1) / m
            rows = cells[:, l] == i
            out[rows, l] = np.interp(x[rows, l], t, f(l + 1, i, t))
    return out


def test_cube_subfunction_is_c1_not_c2_at_the_interfaces():
    h = 1e-4
    f = p2c.cube_subfunction
    for i in (1, 2):
        assert f(1, i, i) == f(1, i + 1, i) == 0
        d2_left = (f(1, i, i) - 2 * f(1, i, i - h) + f(1, i, i - 2 * h)) / h ** 2
        d2_right = (f(1, i + 1, i + 2 * h) - 2 * f(1, i + 1, i + h) + f(1, i + 1, i)) / h ** 2
        assert d2_left == pytest.approx(2 * i, rel=1e-2)
        assert d2_right == pytest.approx(2 * (i + 1), rel=1e-2)


def test_hat_features_and_affine_scores_route_to_the_cell():
    E = 5
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.uniform(0, E, 2000), np.arange(1, E) + 1e-9, np.arange(1, E) - 1e-9])
    assert (np.argmax(p2c.hat_features(z, E), axis=1) + 1 == np.ceil(z)).all()
    assert (p2c.affine_route(z, E) == np.ceil(z)).all()
    integers = np.arange(0, E + 1, dtype=float)
    assert (p2c.affine_route(integers, E) == np.maximum(integers, 1)).all()  # ties: lower index
    assert (np.argmax(p2c.hat_features(integers, E), axis=1) + 1 == np.maximum(integers, 1)).all()


def test_interpolant_relu_form_equals_linear_interpolation():
    t, a, c = p2c.interpolant(wavy, 2, 3, 7)
    z = np.linspace(2, 3, 501)
    relu_form = c + (a * np.maximum(0.0, z[:, None] - t)).sum(axis=1)
    knots = 2 + np.arange(8) / 7
    assert np.abs(relu_form - np.interp(z, knots, wavy(2, 3, knots))).max() < 1e-12
    assert p2c.interpolation_error(wavy, 2, 3, 7, z) == pytest.approx(
        np.abs(np.interp(z, knots, wavy(2, 3, knots)) - wavy(2, 3, z)).max())


@pytest.mark.parametrize("L,E,m", [(1, 2, 3), (3, 2, 5), (2, 4, 6)])
def test_both_nets_compute_the_interpolants_in_every_slot(L, E, m):
    rng = np.random.default_rng(2)
    x = np.vstack([rng.uniform(0, E, (400, L)), p2c.cell_midpoints(L, E)])
    ref = interp_reference(wavy, x, E, m)
    for build in (p2c.build_hat_routed, p2c.build_affine_routed):
        net = build(L, E, m, f=wavy)
        assert np.abs(net(x) - ref).max() < 1e-12
        assert (net.cells(x) == p2c.cell_index(x, E)).all()


@pytest.mark.parametrize("L,E", [(1, 4), (3, 2), (2, 5)])
def test_midpoints_of_the_cells_take_distinct_paths(L, E):
    mid = p2c.cell_midpoints(L, E)
    assert mid.shape == (E ** L, L)
    for build in (p2c.build_hat_routed, p2c.build_affine_routed):
        _, paths = build(L, E, 2).forward_with_paths(mid)
        assert an.n_distinct_paths(paths) == E ** L


def test_sup_error_equals_worst_one_dimensional_error():
    E, L, m = 2, 3, 9
    z = p2c.fine_grid(E, 512)
    x = p2c.axis_covering_points(z, L, np.random.default_rng(3))
    assert all(np.array_equal(np.sort(x[:, l]), z) for l in range(L))  # noqa: E741
    net = p2c.build_hat_routed(L, E, m, f=wavy)
    err = np.abs(net(x) - p2c.cube_target(x, E, wavy)).max()
    assert abs(err - p2c.worst_subfunction_error(wavy, L, E, m, z)) < 1e-12


@pytest.mark.parametrize("variant", ["hat", "affine"])
def test_parameter_counts_match_the_closed_form(variant):
    build = p2c.build_hat_routed if variant == "hat" else p2c.build_affine_routed
    for L, E, m in [(1, 1, 1), (1, 3, 4), (2, 2, 7), (4, 3, 5), (3, 5, 2)]:
        net = build(L, E, m, f=wavy)
        counts, formula = p2c.parameter_count(net), p2c.parameter_formula(L, E, m, variant)
        for key in ("function", "carry", "used", "dense"):
            assert counts[key] == formula[key], (L, E, m, key)
        assert net.n_experts == formula["experts"]
        assert counts["nonzero"] <= counts["used"] <= counts["dense"]


def test_function_part_is_linear_in_L_and_carry_part_is_not():
    f = [p2c.parameter_formula(L, 3, 16) for L in range(1, 7)]
    assert all(f[k]["function"] == (k + 1) * f[0]["function"] for k in range(6))
    second_diff = {f[k + 1]["carry"] - 2 * f[k]["carry"] + f[k - 1]["carry"] for k in range(1, 5)}
    assert second_diff == {16 * 3}  # carry = 4 L E (2L - 1): second difference 16 E


def test_carry_expert_with_a_deeper_block():
    rng = np.random.default_rng(4)
    w = [rng.normal(size=(5, 2)), rng.normal(size=(3, 5)), rng.normal(size=(1, 3))]
    b = [rng.normal(size=5), rng.normal(size=3), rng.normal(size=1)]
    blk = wi.Block(reads=[0, 2], writes=[3], weights=w, biases=b)
    net, roles = wi.carry_expert(4, 4, blk, carry=[(1, 0), (3, 1), (2, 2)])
    x = rng.normal(size=(50, 4))
    h = np.maximum(0, x[:, [0, 2]] @ w[0].T + b[0])
    h = np.maximum(0, h @ w[1].T + b[1])
    expect = np.stack([x[:, 1], x[:, 3], x[:, 2], (h @ w[2].T + b[2])[:, 0]], axis=1)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert np.abs(got - expect).max() < 1e-12
    n_fn = sum(int((r == p2c.FUNCTION).sum()) for pair in roles for r in pair)
    n_carry = sum(int((r == p2c.CARRY).sum()) for pair in roles for r in pair)
    assert n_fn == 10 + 5 + 15 + 3 + 3 + 1
    assert n_carry == 3 * (2 + 2 + 2)  # in, through the middle layer, out


def test_parameter_count_refuses_a_nonzero_unused_entry():
    net = p2c.build_affine_routed(2, 2, 3)
    with torch.no_grad():
        net.net.layers[0].experts[0].net[0].weight[0, 1] = 0.5  # slot 1 does not feed a knot
    with pytest.raises(ValueError, match="unused is nonzero"):
        p2c.parameter_count(net)


@pytest.mark.parametrize("call, match", [
    (lambda: p2c.build_hat_routed(0, 3, 4), "L: expected an integer in \\[1"),
    (lambda: p2c.build_affine_routed(2, 0, 4), "E: expected an integer in \\[1"),
    (lambda: p2c.build_hat_routed(2, 3, 0), "m: expected an integer in \\[1"),
    (lambda: p2c.build_hat_routed(2, 3, 2.5), "m: expected an integer"),
    (lambda: p2c.build_hat_routed(2, 2, 3, f=lambda k, i, z: np.ones(3)), "expected finite values"),
    (lambda: p2c.build_hat_routed(2, 2, 3, f=lambda k, i, z: np.full(z.shape, np.nan)), "NaN/inf"),
    (lambda: p2c.cube_target(np.full((2, 2), 3.5), 3), "expected values in \\[0, 3\\]"),
    (lambda: p2c.cube_target(np.ones(4), 3), "expected points as an \\(N, L\\) array"),
    (lambda: p2c.parameter_formula(2, 3, 4, "dense"), "variant: expected one of"),
    (lambda: p2c.interpolation_error(wavy, 1, 2, 4, np.array([0.2])),
     "expected points in \\[1, 2\\]"),
    (lambda: p2c.fine_grid(3, 0), "points_per_unit"),
    (lambda: wi.carry_expert(3, 3, None, carry=[(3, 0)]), "carry: expected \\(src, dst\\)"),
    (lambda: wi.carry_expert(3, 2, wi.Block([0], [1], [np.ones((2, 1)), np.ones((1, 3))],
                                            [np.zeros(2), np.zeros(1)]), []), "block layer 1"),
    (lambda: wi.carry_expert(3, 2, wi.Block([5], [1], [np.ones((2, 1)), np.ones((1, 2))],
                                            [np.zeros(2), np.zeros(1)]), []), "expected reads"),
    (lambda: p2c.build_hat_routed(2, 3, 4)(np.ones((5, 3))), "last dimension 2"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cube_sampler_draws_points_and_their_targets():
    sample = p2c.cube_sampler(3, 2, f=wavy)
    x, y = sample(64, torch.Generator().manual_seed(5))
    x2, _ = sample(64, torch.Generator().manual_seed(5))
    assert x.shape == y.shape == (64, 3) and x.dtype == torch.float64
    assert torch.equal(x, x2) and float(x.min()) >= 0 and float(x.max()) <= 2
    assert np.allclose(y.numpy(), p2c.cube_target(x.numpy(), 2, wavy))

import math

import numpy as np
import pytest
import torch

import moe_lib as ml
from moe_lib import analysis as an
from moe_lib.constructions import p2_product as p2p
from moe_lib.constructions import wiring as wi

SMALL = {"n_knots": 16, "division_width": 24, "samples_per_feature": 6}


@pytest.fixture(scope="module")
def factors():
    ml.seed_everything(0)
    return p2p.circle_factors(2, 3, 5, 12, 1.3, seed=4, **SMALL)


def test_trig_target_is_sin_plus_cos_of_the_angle(factors):
    circle = factors[0].manifold
    a = torch.tensor([0.0, 0.4, -2.0], dtype=torch.float64)
    f = p2p.TrigTarget(circle, 2, 7)
    assert torch.allclose(f(circle.from_angles(a)), torch.sin(2 * a) + torch.cos(7 * a))
    assert f.lipschitz == pytest.approx(math.pi / 2 * 9)


def test_each_slot_is_its_factor_shallow_network(factors):
    net = p2p.build_product_moe(factors)
    x, _ = p2p.axis_covering_angles(factors, 500, np.random.default_rng(1))
    y, paths = net.forward_with_paths(x)
    assert y.shape == (500, 2) and paths.shape == (500, 4)
    for l, con in enumerate(factors):  # noqa: E741
        with torch.no_grad():
            ys, ps = con.network.forward_with_paths(x[:, net.blocks[l]])
        assert np.abs(ys[:, 0].numpy() - y[:, l]).max() < 1e-12
        assert (ps[:, 1].numpy() == paths[:, 2 * l + 1]).all()
    assert (paths[:, [0, 2]] == 0).all()


def test_grid_paths_and_counts(factors):
    net = p2p.build_product_moe(factors)
    x, angles = p2p.angle_grid_points(factors, 12, phase=0.05)
    assert x.shape == (144, 10) and angles.shape == (144, 2)
    assert an.n_distinct_paths(net.forward_with_paths(x)[1]) == 9
    counts = p2p.role_counts(net)
    assert counts["carry"] == p2p.carry_formula([5, 5], 3)
    assert counts["function"] == p2p.function_count_of_pieces(factors)
    assert net.n_experts == 2 * 2 * 3


def test_carry_formula_by_hand():
    # L = 2, D = (2, 3), E = 1, depth 3: n_1 = 5, n_2 = 1 + 3 = 4; 6 * (2*5 - 2 + 2*4 - 3) = 78
    assert p2p.carry_formula([2, 3], 1) == 78


def test_block_from_mlp_keeps_the_function():
    mlp = ml.MLP(2, 1, 4, depth=3, dtype=torch.float64)
    blk = wi.block_from_mlp(mlp, reads=[2, 0], writes=[1])
    net, _ = wi.carry_expert(3, 2, blk, carry=[(1, 0)])
    x = torch.randn(20, 3, dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
        assert torch.allclose(out[:, 1], mlp(x[:, [2, 0]])[:, 0], atol=1e-12)
        assert torch.equal(out[:, 0], x[:, 1])


def test_width_sweep_error_is_the_worst_slot_error(factors):
    rng = np.random.default_rng(0)
    sw = p2p.width_sweep([8, 32], 2, 3, 5, 1.3, 256, rng, seed=4, **SMALL)
    assert sw["widths"] == [8, 32] and len(sw["error"]) == 2
    # the same construction by hand, on the same points, gives the same error
    rng = np.random.default_rng(0)
    net = p2p.build_product_moe(p2p.circle_factors(2, 3, 5, 8, 1.3, seed=4, **SMALL))
    reused = p2p.build_product_moe(p2p.circle_factors(2, 3, 5, 8, 1.3, seed=4, reuse=factors, **SMALL))
    x0 = p2p.axis_covering_angles(net.factors, 64, np.random.default_rng(1))[0]
    assert np.array_equal(net(x0), reused(x0))          # layer 1 does not depend on m
    x, _ = p2p.axis_covering_angles(net.factors, 256, rng)
    assert sw["error"][0] == pytest.approx(float(np.abs(net(x) - net.target(x)).max()), abs=1e-14)


@pytest.mark.parametrize("call, match", [
    (lambda f: p2p.width_sweep([8], 1, 3, 5, 1.3, 16, np.random.default_rng(0)), "at least 2 widths"),
    (lambda f: p2p.circle_factors(2, 3, 5, 8, 1.0, seed=4, reuse=f), "reuse: expected"),
    (lambda f: p2p.build_product_moe([]), "at least one shallow construction"),
    (lambda f: p2p.build_product_moe([f[0], "x"]), "expected a 3-layer ShallowConstruction"),
    (lambda f: p2p.circle_factors(1, 4, 5, 8, 0.5), "radius: expected"),
    (lambda f: p2p.TrigTarget(f[0].manifold, -1), "sin_freq"),
    (lambda f: p2p.carry_formula([3, 0], 2), "D_l"),
    (lambda f: wi.block_from_mlp(ml.MLP(2, 1, 3), [0], [0]), "expected 1 inputs"),
    (lambda f: wi.block_from_mlp(torch.nn.Linear(2, 1), [0, 1], [0]), "expected a moe_lib.MLP"),
])
def test_bad_inputs_raise_clear_errors(factors, call, match):
    with pytest.raises(ValueError, match=match):
        call(factors)

import math

import numpy as np
import pytest
import torch

import moe_lib as ml
from moe_lib import fitting as ft
from moe_lib.constructions.p2_compositional import cube_target
from moe_lib.experiments import p2_training as x2t


@pytest.fixture(autouse=True)
def _seed():
    ml.seed_everything(0)


def test_sweep_axis_and_by_value_are_value_major():
    values, seeds = ft.sweep_axis([8, 32], [0, 1, 2])
    assert values == [8, 8, 8, 32, 32, 32] and seeds == [0, 1, 2, 0, 1, 2]
    table = ft.by_value(np.arange(6.0), 2)
    assert table.shape == (2, 3) and table[1, 0] == 3.0
    with pytest.raises(ValueError, match="multiple of 4"):
        ft.by_value(np.arange(6.0), 4)
    with pytest.raises(ValueError, match="at least one"):
        ft.sweep_axis([], [0])


@pytest.mark.parametrize("active,d_in,d_out", [(245, 16, 1), (1813, 128, 1), (100, 3, 2)])
def test_dense_width_is_the_closest_parameter_count(active, d_in, d_out):
    w = ft.dense_width(active, d_in, d_out)
    count = lambda w: ml.mlp_param_count(d_in, d_out, w, 2)  # noqa: E731
    assert all(abs(count(w) - active) <= abs(count(v) - active) for v in range(1, 4 * w + 10))


def test_circle_data_lie_on_the_circle_in_the_first_two_coordinates():
    x, y = x2t.circle_test_set(12, 64)
    assert x.shape == (64, 12) and y.shape == (64, 1)
    assert torch.allclose(x[:, :2].norm(dim=1), torch.ones(64, dtype=torch.float64))
    assert x[:, 2:].abs().max() == 0
    assert torch.allclose(y[:, 0], torch.sin(5 * x[:, 0]) + torch.cos(3 * x[:, 1]))
    xs, ys = x2t.circle_sampler(12)(200, torch.Generator().manual_seed(0))
    assert xs.shape == (200, 12) and xs[:, 2:].abs().max() == 0
    assert torch.allclose(ys, x2t.circle_target(xs))
    theta = torch.atan2(x[:, 1], x[:, 0]) % (2 * math.pi)
    assert torch.allclose(theta, 2 * math.pi * (torch.arange(64) + 0.5).double() / 64)
    with pytest.raises(ValueError, match="D"):
        x2t.circle_embed(torch.zeros(3), 1)


def test_exp1_models_have_the_paper_architecture():
    moe = x2t.exp1_moe([4, 8], [0, 1])
    assert moe.n_models == 4 and moe.in_dims == [4, 4, 8, 8] and moe.n_experts == 4
    assert moe.active_params(0) == 4 * 4 + (10 * 4 + 10 + 10 + 1)
    dense = x2t.exp1_dense([8], [0, 1], 14)
    assert dense.n_experts == 1 and dense.expert_params() == 14 * 10 + 1


def test_d_free_init_makes_training_independent_of_D():
    seeds = [0, 1]
    runs = []
    for D in (3, 9):
        stack = x2t.exp1_d_free_init(x2t.exp1_moe([D], seeds, width=4), seeds)
        r = ft.train_sweep(lambda _v, _s, st=stack: st, [D], seeds, x2t.circle_sampler(D),
                           x2t.circle_test_set(D, 100), steps=30)
        runs.append(r["mse"][0])
    assert np.allclose(runs[0], runs[1], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="multiple"):
        x2t.exp1_d_free_init(x2t.exp1_moe([3], [0, 1, 2]), [0, 1])


def test_train_sweep_accepts_one_sampler_per_value_and_checks_keys():
    r = ft.train_sweep(lambda D, s: x2t.exp1_moe([D], s, width=3), [3, 5], [0],
                       {D: x2t.circle_sampler(D) for D in (3, 5)},
                       {D: x2t.circle_test_set(D, 50) for D in (3, 5)}, steps=5)
    assert r["mse"].shape == (2, 1) and len(r["histories"]) == 2
    with pytest.raises(ValueError, match="keyed by the sweep values"):
        ft.train_sweep(lambda D, s: x2t.exp1_moe([D], s), [3, 5], [0],
                       {3: x2t.circle_sampler(3)}, x2t.circle_test_set(3, 10), steps=5)
    with pytest.raises(ValueError, match="stack of 2 models"):
        ft.train_sweep(lambda D, s: x2t.exp1_moe([D], [0]), [3], [0, 1], x2t.circle_sampler(3),
                       x2t.circle_test_set(3, 10), steps=5)


def test_square_sampler_draws_the_construction_target():
    xs, ys = x2t.square_sampler(3)(300, torch.Generator().manual_seed(1))
    assert float(xs.min()) >= 0 and float(xs.max()) <= 3
    assert torch.equal(ys, torch.from_numpy(cube_target(xs.numpy(), 3)))


def test_square_grid_is_the_midpoint_grid():
    x, y = x2t.square_grid(3, 4)
    assert x.shape == (144, 2) and y.shape == (144, 2)
    assert torch.allclose(x[:3, 1], torch.tensor([0.125, 0.375, 0.625], dtype=torch.float64))
    assert torch.equal(y, torch.from_numpy(cube_target(x.numpy(), 3)))


@pytest.mark.parametrize("m", [8, 16, 100])
def test_exp2_architectures_have_equal_parameter_counts(m):
    deep = x2t.exp2_models("2-3", [m], [0])
    shallow = x2t.exp2_models("1-6", [m], [0])
    assert deep.stored_params() == shallow.stored_params() == 30 * m + 24
    assert deep.stored_params() == deep.to_deep_moe(0).stored_params()
    with pytest.raises(ValueError, match="arch"):
        x2t.exp2_models("3-2", [m], [0])


def test_the_samplers_draw_steps_at_once_and_keep_their_pairs():
    from moe_lib.constructions.p2_compositional import cube_sampler
    for new, old in ((x2t.square_sampler(3), cube_sampler(2, 3)),):
        a, b = new(64, torch.Generator().manual_seed(4)), old(64, torch.Generator().manual_seed(4))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for sampler in (x2t.square_sampler(3), x2t.circle_sampler(7)):
        g = torch.Generator().manual_seed(2)
        calls = [sampler(9, g) for _ in range(3)]
        x, y = sampler.draw_steps(9, torch.Generator().manual_seed(2), 3)
        assert torch.equal(x, torch.stack([c[0] for c in calls]))
        assert torch.equal(y, torch.stack([c[1] for c in calls]))
    small = x2t.circle_sampler(3)(9, torch.Generator().manual_seed(2))
    big = x2t.circle_sampler(7)(9, torch.Generator().manual_seed(2))
    assert torch.equal(big[0][:, :3], small[0]) and torch.equal(big[1], small[1])


def test_train_circle_stack_is_train_sweep_in_one_stack():
    seeds, Ds = [0, 1], [3, 6]
    one = x2t.train_circle_stack(x2t.exp1_moe(Ds, seeds, width=4), Ds, seeds, steps=30, n_test=50)
    per_d = ft.train_sweep(lambda D, s: x2t.exp1_moe([D], s, width=4), Ds, seeds,
                           {D: x2t.circle_sampler(D) for D in Ds},
                           {D: x2t.circle_test_set(D, 50) for D in Ds}, steps=30)
    assert one["mse"].shape == (2, 2) and len(one["histories"]) == 2
    # the largest D is unpadded: bit for bit; a padded product may sum in another order
    assert np.array_equal(one["mse"][1], per_d["mse"][1])
    assert np.array_equal(one["histories"][1], per_d["histories"][1])
    assert np.allclose(one["mse"], per_d["mse"], rtol=1e-12, atol=0)
    assert all(np.allclose(a, b, rtol=1e-12, atol=0)
               for a, b in zip(one["histories"], per_d["histories"], strict=True))
    with pytest.raises(ValueError, match="D-major"):
        x2t.train_circle_stack(x2t.exp1_moe([6, 3], seeds), Ds, seeds, steps=2)

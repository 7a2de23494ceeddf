import math

import numpy as np
import pytest
import torch

import moe_lib as ml
from moe_lib import p2_experiments as px
from moe_lib.constructions.compositional import cube_target


@pytest.fixture(autouse=True)
def _seed():
    ml.seed_everything(0)


def test_sweep_axis_and_by_value_are_value_major():
    values, seeds = px.sweep_axis([8, 32], [0, 1, 2])
    assert values == [8, 8, 8, 32, 32, 32] and seeds == [0, 1, 2, 0, 1, 2]
    table = px.by_value(np.arange(6.0), 2)
    assert table.shape == (2, 3) and table[1, 0] == 3.0
    with pytest.raises(ValueError, match="multiple of 4"):
        px.by_value(np.arange(6.0), 4)
    with pytest.raises(ValueError, match="at least one"):
        px.sweep_axis([], [0])


@pytest.mark.parametrize("active,d_in,d_out", [(245, 16, 1), (1813, 128, 1), (100, 3, 2)])
def test_dense_width_is_the_closest_parameter_count(active, d_in, d_out):
    w = px.dense_width(active, d_in, d_out)
    count = lambda w: ml.mlp_param_count(d_in, d_out, w, 2)  # noqa: E731
    assert all(abs(count(w) - active) <= abs(count(v) - active) for v in range(1, 4 * w + 10))


def test_circle_data_lie_on_the_circle_in_the_first_two_coordinates():
    x, y = px.circle_test_set(12, 64)
    assert x.shape == (64, 12) and y.shape == (64, 1)
    assert torch.allclose(x[:, :2].norm(dim=1), torch.ones(64, dtype=torch.float64))
    assert x[:, 2:].abs().max() == 0
    assert torch.allclose(y[:, 0], torch.sin(5 * x[:, 0]) + torch.cos(3 * x[:, 1]))
    xs, ys = px.circle_sampler(12)(200, torch.Generator().manual_seed(0))
    assert xs.shape == (200, 12) and xs[:, 2:].abs().max() == 0
    assert torch.allclose(ys, px.circle_target(xs))
    theta = torch.atan2(x[:, 1], x[:, 0]) % (2 * math.pi)
    assert torch.allclose(theta, 2 * math.pi * (torch.arange(64) + 0.5).double() / 64)
    with pytest.raises(ValueError, match="D"):
        px.circle_embed(torch.zeros(3), 1)


def test_exp1_models_have_the_paper_architecture():
    moe = px.exp1_moe([4, 8], [0, 1])
    assert moe.n_models == 4 and moe.in_dims == [4, 4, 8, 8] and moe.n_experts == 4
    assert moe.active_params(0) == 4 * 4 + (10 * 4 + 10 + 10 + 1)
    dense = px.exp1_dense([8], [0, 1], 14)
    assert dense.n_experts == 1 and dense.expert_params() == 14 * 10 + 1


def test_d_free_init_makes_training_independent_of_D():
    seeds = [0, 1]
    runs = []
    for D in (3, 9):
        stack = px.exp1_d_free_init(px.exp1_moe([D], seeds, width=4), seeds)
        r = px.train_sweep(lambda _v, _s, st=stack: st, [D], seeds, px.circle_sampler(D),
                           px.circle_test_set(D, 100), steps=30)
        runs.append(r["mse"][0])
    assert np.allclose(runs[0], runs[1], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="multiple"):
        px.exp1_d_free_init(px.exp1_moe([3], [0, 1, 2]), [0, 1])


def test_train_sweep_accepts_one_sampler_per_value_and_checks_keys():
    r = px.train_sweep(lambda D, s: px.exp1_moe([D], s, width=3), [3, 5], [0],
                       {D: px.circle_sampler(D) for D in (3, 5)},
                       {D: px.circle_test_set(D, 50) for D in (3, 5)}, steps=5)
    assert r["mse"].shape == (2, 1) and len(r["histories"]) == 2
    with pytest.raises(ValueError, match="keyed by the sweep values"):
        px.train_sweep(lambda D, s: px.exp1_moe([D], s), [3, 5], [0],
                       {3: px.circle_sampler(3)}, px.circle_test_set(3, 10), steps=5)
    with pytest.raises(ValueError, match="stack of 2 models"):
        px.train_sweep(lambda D, s: px.exp1_moe([D], [0]), [3], [0, 1], px.circle_sampler(3),
                       px.circle_test_set(3, 10), steps=5)


def test_square_target_equals_the_construction_target():
    x = torch.rand(5000, 2, dtype=torch.float64) * 3
    x[:10] = torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 0.0], [0.5, 2.5]] * 2,
                          dtype=torch.float64)
    assert torch.allclose(px.square_target(x), torch.from_numpy(cube_target(x.numpy(), 3)),
                          atol=1e-15, rtol=0)
    xs, ys = px.square_sampler(3)(300, torch.Generator().manual_seed(1))
    assert float(xs.min()) >= 0 and float(xs.max()) <= 3
    assert torch.allclose(ys, px.square_target(xs))


def test_square_grid_is_the_midpoint_grid():
    x, y = px.square_grid(3, 4)
    assert x.shape == (144, 2) and y.shape == (144, 2)
    assert torch.allclose(x[:3, 1], torch.tensor([0.125, 0.375, 0.625], dtype=torch.float64))
    assert torch.allclose(y, px.square_target(x))


@pytest.mark.parametrize("m", [8, 16, 100])
def test_exp2_architectures_have_equal_parameter_counts(m):
    deep = px.exp2_models("2-3", [m], [0])
    shallow = px.exp2_models("1-6", [m], [0])
    assert deep.stored_params() == shallow.stored_params() == 30 * m + 24
    assert deep.stored_params() == deep.to_deep_moe(0).stored_params()
    with pytest.raises(ValueError, match="arch"):
        px.exp2_models("3-2", [m], [0])


def test_path_ids_and_cell_purity():
    paths = torch.tensor([[0, 0], [0, 2], [2, 1], [1, 1]])
    assert px.path_ids(paths, 3).tolist() == [0, 2, 7, 4]
    cells = torch.tensor([0, 0, 0, 1, 1, 1])
    assert px.cell_purity(torch.tensor([5, 5, 5, 2, 2, 2]), cells) == 1.0
    assert px.cell_purity(torch.tensor([5, 5, 1, 2, 3, 4]), cells) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="equal shapes"):
        px.cell_purity(torch.tensor([1, 2]), torch.tensor([1, 2, 3]))

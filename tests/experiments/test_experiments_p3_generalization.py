import math

import numpy as np
import pytest
import torch

from moe_lib.capacity import rademacher as rd
from moe_lib.capacity import spectral as sp
from moe_lib.experiments import p3_generalization as pg


@pytest.fixture(scope="module")
def dense_sweep():
    """A tiny sweep of dense networks: a linear expert and a 2-layer ReLU expert, two sizes m
    and two seeds (each model on its own training set)."""
    teacher = pg.regions_teacher(3, 0)
    return pg.classification_sweep([(1, 1, 0), (1, 1, 4)], [16, 40], [0, 1], steps=5, lr=0.01,
                                   batch_size=8, teacher=teacher, noise=0.1, n_test=60, gamma=1.0)


def test_losses_equal_one_pass_per_model_on_its_own_set():
    # the sweep evaluates each training-set size in one pass; model by model it must be the same
    teacher = pg.regions_teacher(3, 1)
    res = pg.classification_sweep([(3, 1, 4), (3, 2, 0)], [16, 40], [0, 1], steps=5, lr=0.01,
                                  batch_size=8, teacher=teacher, noise=0.1, n_test=60, gamma=0.5)
    x_test, y_test = pg.regions_data(60, teacher, 0.1, 104729)
    for c, stack in enumerate(res["stacks"]):
        with torch.no_grad():
            for s, (x, y) in enumerate(res["train"]):
                for xs, ys, key in ((x, y, "train_ramp"), (x_test, y_test, "test_ramp")):
                    xin = xs[None].expand(stack.n_models, -1, -1)
                    margin = stack(xin)[s, :, 0].numpy() * ys[:, 0].numpy()
                    i, j = divmod(s, 2)
                    assert res[key][c, i, j] == float(rd.ramp(margin, 0.5).mean())
                idx = stack.select(stack.scores(0, x[None].expand(stack.n_models, -1, -1)))[0][s]
                assert np.array_equal(res["selected"][c][s], idx.numpy())


def test_spectral_bounds_by_hand(dense_sweep):
    res = dense_sweep
    sb = pg.spectral_bounds(res, 1.0, 0.05)
    assert all(v.shape == (2, 2, 2) for v in sb.values())
    # the linear expert: one matrix [w, b], R_A = ||(w, b)|| = prod, lower = prod (L = 1)
    stack = res["stacks"][0]
    w = torch.cat([stack.weights[0][1, 0, 0], stack.biases[0][1, 0]]).detach().numpy()
    assert sb["R_A"][0, 0, 1] == pytest.approx(np.linalg.norm(w), rel=1e-12)
    assert sb["lower"][0, 0, 1] == pytest.approx(sb["prod"][0, 0, 1], rel=1e-12)
    # the ReLU expert of the second m, second seed (model 3), W = width + 1 = 5
    x = res["train"][3][0].numpy()
    xt = np.concatenate([x, np.ones((40, 1))], axis=1)
    x_norm = math.sqrt((xt ** 2).sum())
    rad = 4 / 40 + 12 * x_norm * sb["R_A"][1, 1, 1] * math.sqrt(math.log(50)) * math.log(40) / 40
    assert sb["rad"][1, 1, 1] == pytest.approx(rad, rel=1e-12)
    assert sb["rad_gen"][1, 1, 1] == pytest.approx(2 * rad + 4 * math.sqrt(2 * math.log(80) / 40))
    assert sb["margin"][1, 1, 1] == pytest.approx(sp.margin_bound(
        res["train_ramp"][1, 1, 1], sb["R_A"][1, 1, 1], x_norm, 5, 40, 1.0, 0.05))
    assert (sb["R_A"] >= sb["lower"] * (1 - 1e-12)).all()
    assert np.array_equal(sb["R_A"], res["R_A"])     # one expert: the largest is the expert's


def test_linear_mc_ratios(dense_sweep):
    res = dense_sweep
    sb = pg.spectral_bounds(res, 1.0, 0.05)
    ratios = pg.linear_mc_ratios(res, sb, 50, np.random.default_rng(0), 1.0)
    rng = np.random.default_rng(0)
    want = []
    for s, (x, _) in enumerate(res["train"]):
        xt = np.concatenate([x.numpy(), np.ones((x.shape[0], 1))], axis=1)
        i, j = divmod(s, 2)
        want.append(sb["rad"][0, i, j] / rd.linear_l2_mc(xt, 50, rng, sb["R_A"][0, i, j])[0])
    assert ratios.shape == (4,) and np.array_equal(ratios, want)


def test_spectral_bounds_bad_inputs(dense_sweep):
    with pytest.raises(ValueError):
        pg.spectral_bounds({**dense_sweep, "configs": [(2, 1, 0), (1, 1, 4)]}, 1.0, 0.05)
    with pytest.raises(ValueError):
        pg.spectral_bounds(dense_sweep, 0.0, 0.05)
    with pytest.raises(ValueError):
        pg.linear_mc_ratios(dense_sweep, pg.spectral_bounds(dense_sweep, 1.0, 0.05), 10,
                            np.random.default_rng(0), 1.0, config=1)

import numpy as np
import pytest
import torch

import moe_lib as ml
from moe_lib.fitting.train import dataset_sampler, fit, function_sampler, mse, predict
from moe_lib.models.stacked import stacked_class_members


@pytest.fixture(autouse=True)
def _seed():
    ml.seed_everything(0)


def _cube(n, g):
    return torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1


def _target(x):
    return torch.stack([torch.sin(2 * x[:, 0]), x[:, 0] * x[:, 1]], dim=1)


SAMPLER = function_sampler(_cube, _target)


def test_fit_reduces_the_test_error_of_every_model():
    stack = stacked_class_members([2, 2], 3, 16, [0, 1, 2])
    x = _cube(2000, torch.Generator().manual_seed(9))
    before = mse(stack, x, _target(x))
    result = fit(stack, SAMPLER, steps=300, batch_size=64, lr=1e-2)
    after = mse(stack, x, _target(x))
    assert result.history.shape == (300, 3) and result.steps == 300 and not result.stopped_early
    assert np.all(after < before / 3)
    assert result.final(20).shape == (3,)


def test_a_model_trains_the_same_alone_or_in_a_stack():
    stack = stacked_class_members([2, 2], 2, 8, [4, 5])
    alone = stacked_class_members([2, 2], 2, 8, [5])
    h_stack = fit(stack, SAMPLER, steps=50, seeds=[10, 11]).history
    h_alone = fit(alone, SAMPLER, steps=50, seeds=[11]).history
    assert np.allclose(h_stack[:, 1], h_alone[:, 0], rtol=1e-9, atol=0)


def test_fit_is_reproducible():
    runs = []
    for _ in range(2):
        stack = stacked_class_members([2, 2, 2], 3, 8, [0, 1])
        runs.append(fit(stack, SAMPLER, steps=40).history)
    assert np.array_equal(runs[0], runs[1])


def test_fit_trains_a_plain_deep_moe_too():
    torch.manual_seed(0)
    model = ml.moe_class_member(1, 2, 2, 16, [2, 2], dtype=torch.float64)
    x = _cube(1000, torch.Generator().manual_seed(3))
    before = mse(model, x, _target(x))
    result = fit(model, SAMPLER, steps=200, lr=1e-2)
    assert result.history.shape == (200, 1)
    assert mse(model, x, _target(x))[0] < before[0] / 2


def test_early_stop_on_target_loss_and_patience():
    stack = stacked_class_members([2, 2], 2, 16, [0])
    r = fit(stack, SAMPLER, steps=2000, lr=1e-2, target_loss=0.05, window=10)
    assert r.stopped_early and r.steps < 2000
    assert r.history[-10:].mean() < 0.05
    stack = stacked_class_members([2, 2], 2, 16, [0])
    r = fit(stack, SAMPLER, steps=5000, lr=1e-9, patience=20, window=5)
    assert r.stopped_early and r.steps < 5000


def test_trained_stack_converts_to_an_equal_deep_moe():
    stack = stacked_class_members([2, 3, 2], 3, 8, [0, 1], in_dims=[2, 2])
    fit(stack, SAMPLER, steps=100, lr=1e-2)
    x = _cube(500, torch.Generator().manual_seed(1))
    out = predict(stack, x)
    for s in range(2):
        assert torch.allclose(stack.to_deep_moe(s)(x), out[s], atol=1e-12, rtol=0)


def test_dataset_sampler_draws_rows_of_the_set():
    x = torch.arange(10, dtype=torch.float64)[:, None]
    sample = dataset_sampler(x, 2 * x)
    xb, yb = sample(50, torch.Generator().manual_seed(0))
    assert xb.shape == (50, 1) and torch.equal(yb, 2 * xb)
    assert set(xb[:, 0].tolist()) <= set(range(10))


def test_predict_chunks_agree_with_one_pass():
    stack = stacked_class_members([2, 2], 3, 8, [0, 1])
    x = _cube(1000, torch.Generator().manual_seed(2))
    a, b = predict(stack, x, chunk=7), predict(stack, x, chunk=5000)
    assert torch.allclose(a, b, atol=1e-14, rtol=0)


def test_bad_arguments_raise_clear_errors():
    stack = stacked_class_members([2, 2], 2, 8, [0, 1])
    with pytest.raises(ValueError, match="steps"):
        fit(stack, SAMPLER, steps=0)
    with pytest.raises(ValueError, match="lr"):
        fit(stack, SAMPLER, steps=5, lr=-1.0)
    with pytest.raises(ValueError, match="one seed per model"):
        fit(stack, SAMPLER, steps=5, seeds=[0])
    with pytest.raises(ValueError, match="sampler"):
        fit(stack, "data", steps=5)
    bad = function_sampler(_cube, lambda x: x[:, :1])
    with pytest.raises(ValueError, match="output shape"):
        fit(stack, bad, steps=5)
    with pytest.raises(ValueError, match="became nan at step 0"):
        fit(stack, function_sampler(_cube, lambda x: x * float("nan")), steps=5)
    with pytest.raises(ValueError, match="same number of rows"):
        mse(stack, torch.zeros(5, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="same positive number of rows"):
        dataset_sampler(torch.zeros(5, 2), torch.zeros(4, 1))


def test_cosine_decay_of_the_learning_rate():
    from moe_lib.fitting.train import cosine_lr

    assert cosine_lr(0, 100, 1e-2, 1e-4) == pytest.approx(1e-2)
    assert cosine_lr(50, 100, 1e-2, 1e-4) == pytest.approx((1e-2 + 1e-4) / 2)
    assert cosine_lr(100, 100, 1e-2, 1e-4) == pytest.approx(1e-4)
    # lr_final = lr is the constant schedule: the same run as without lr_final
    runs = []
    for kw in ({}, {"lr_final": 1e-3}):
        stack = stacked_class_members([2, 2], 2, 8, [0, 1])
        runs.append(fit(stack, SAMPLER, steps=30, lr=1e-3, **kw).history)
    assert np.allclose(runs[0], runs[1], rtol=1e-12, atol=0)
    decayed = fit(stacked_class_members([2, 2], 2, 8, [0, 1]), SAMPLER, steps=30, lr=1e-3,
                  lr_final=1e-5).history
    assert not np.allclose(runs[0], decayed)
    with pytest.raises(ValueError, match="lr_final"):
        fit(stacked_class_members([2, 2], 2, 8, [0]), SAMPLER, steps=3, lr_final=-1.0)


def test_a_serial_sampler_draws_the_steps_of_successive_calls():
    serial = function_sampler(_cube, _target, serial=True)
    assert not hasattr(SAMPLER, "draw_steps")
    g = torch.Generator().manual_seed(3)
    calls = [serial(5, g) for _ in range(4)]
    x, y = serial.draw_steps(5, torch.Generator().manual_seed(3), 4)
    assert x.shape == (4, 5, 2) and y.shape == (4, 5, 2)
    assert torch.equal(x, torch.stack([c[0] for c in calls]))
    assert torch.equal(y, torch.stack([c[1] for c in calls]))


@pytest.mark.parametrize("seeds", [[10, 11, 12], [10, 11, 10]])
def test_fit_gives_the_same_run_with_steps_drawn_at_once(seeds):
    runs = []
    for sampler in (SAMPLER, function_sampler(_cube, _target, serial=True)):
        stack = stacked_class_members([2, 2, 2], 3, 8, [0, 1, 0])
        history = fit(stack, sampler, steps=40, batch_size=16, seeds=seeds).history
        runs.append((history, [p.detach().clone() for p in stack.parameters()]))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    same = np.array_equal(runs[1][0][:, 0], runs[1][0][:, 2])   # models 0 and 2 start equal
    assert same == (seeds[0] == seeds[2])      # and share a stream exactly when their seeds do

"""The MoMLP model: hard routing, batched banks equal a per-expert reference, accounting."""

import numpy as np
import pytest
import torch

import moe_lib as ml
from moe_lib.models import momlp as mm
from moe_lib.models import routing_tree as rt


def _stacked(K, widths, seed=0):
    g = torch.Generator().manual_seed(seed)
    pairs = zip(widths, widths[1:], strict=False)
    W = [torch.randn(K, o, i, generator=g, dtype=torch.float64) for i, o in pairs]
    b = [torch.randn(K, o, generator=g, dtype=torch.float64) for o in widths[1:]]
    a = torch.rand(K, len(widths) - 2, generator=g, dtype=torch.float64) * 0.3
    return mm.StackedMLPBank(W, b, a), W, b, a


def test_stacked_bank_equals_per_expert_loop():
    bank, W, b, a = _stacked(5, [2, 7, 4, 3])
    x = torch.rand(300, 2, dtype=torch.float64)
    idx = torch.randint(0, 5, (300,))
    y = bank(x, idx)
    for i in range(300):   # reference: one expert at a time
        h = x[i]
        k = int(idx[i])
        for layer in range(3):
            h = W[layer][k] @ h + b[layer][k]
            if layer < 2:
                h = torch.maximum(h, a[k, layer] * h)
        assert torch.allclose(y[i], h)
    assert bank.params_per_expert == (2 * 7 + 7) + (7 * 4 + 4) + (4 * 3 + 3) + 2


def test_momlp_routes_each_input_to_one_expert_across_banks():
    router = rt.KDTreeRouter(2, 3)                     # 9 cells
    const = mm.ConstantBank(torch.arange(4, dtype=torch.float64)[:, None] * 10)
    mlp, *_ = _stacked(5, [2, 3, 1])
    model = mm.MoMLP(router, [const, mlp])
    x = torch.rand(400, 2, dtype=torch.float64)
    idx = router(x).idx[:, 0]
    y = model(x)
    low = idx < 4
    assert torch.equal(y[low, 0], idx[low].double() * 10)
    assert torch.allclose(y[~low], mlp(x[~low], idx[~low] - 4))
    assert model.loaded_parameters() == max(1, mlp.params_per_expert) + router.path_numbers
    assert model.total_expert_parameters() == 4 * 1 + 5 * mlp.params_per_expert


def test_group_by_expert():
    order, experts, counts = mm.group_by_expert(torch.tensor([3, 1, 3, 0, 1, 3]))
    assert experts.tolist() == [0, 1, 3] and counts.tolist() == [1, 2, 3]
    assert order.tolist() == [3, 1, 4, 0, 2, 5]


def test_concat_bank():
    a = mm.ConstantBank(torch.ones(4, 1, dtype=torch.float64))
    b = mm.ConstantBank(torch.zeros(4, 2, dtype=torch.float64))
    c = mm.ConcatBank([a, b])
    assert c.d_out == 3 and c.params_per_expert == 3
    assert c(torch.zeros(2, 2), torch.tensor([0, 3])).tolist() == [[1, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize("make, message", [
    (lambda: mm.MoMLP(ml.GridRouter(2, 2), mm.ConstantBank(torch.zeros(3))), "n_experts = 3"),
    (lambda: mm.MoMLP(ml.GridRouter(1, 2), []), "at least one expert bank"),
    (lambda: mm.MoMLP(ml.TopKGate(2, 2, k=2), mm.ConstantBank(torch.zeros(2)))(torch.zeros(3, 2)),
     "hard routing"),
    (lambda: mm.ConcatBank([mm.ConstantBank(torch.zeros(2)), mm.ConstantBank(torch.zeros(3))]),
     "same number of experts"),
    (lambda: mm.StackedMLPBank([torch.zeros(2, 3, 2)], [torch.zeros(2, 4)]), r"biases\[0\]"),
    (lambda: mm.ConstantBank(torch.zeros(2, 2, 2)), "values: expected shape"),
])
def test_bad_inputs(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_momlp_is_deterministic_and_batched():
    rng = np.random.default_rng(0)
    router = rt.DyadicTreeRouter(2, 3)
    bank = mm.ConstantBank(torch.from_numpy(rng.normal(size=(64, 2))))
    model = mm.MoMLP(router, bank)
    x = torch.from_numpy(rng.random((1000, 2)))
    assert torch.equal(model(x), model(x))
    assert torch.equal(model(x[:10]), model(x)[:10])

import pytest
import torch

import moe_lib as ml
from moe_lib.experiments.primer import random_layer


@pytest.fixture(autouse=True)
def _seed():
    ml.seed_everything(0)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_sparse_dispatch_equals_dense_reference(k):
    layer = random_layer(6, 5, 16, k=k, d_out=3, dtype=torch.float32)
    x = torch.randn(500, 6)
    assert torch.allclose(layer(x), layer.dense_forward(x), atol=1e-6)


def test_top1_returns_the_chosen_expert_exactly():
    layer = random_layer(4, 6, 8, k=1, dtype=torch.float64)
    x = torch.randn(300, 4, dtype=torch.float64)
    idx = layer.route(x).idx[:, 0]
    out = layer(x)
    for e in idx.unique().tolist():
        rows = idx == e
        assert torch.equal(out[rows], layer.experts[e](x[rows]))


def test_experts_run_only_on_routed_rows():
    layer = random_layer(3, 4, 8, k=1)
    seen = {}
    for e, f in enumerate(layer.experts):
        f.register_forward_hook(lambda m, inp, out, e=e: seen.__setitem__(e, inp[0].shape[0]))
    x = torch.randn(200, 3, dtype=torch.float64)
    counts = torch.bincount(layer.route(x).idx[:, 0], minlength=4)
    layer(x)
    assert sum(seen.values()) == 200
    assert all(seen.get(e, 0) == int(counts[e]) for e in range(4))


def test_parameter_counts():
    layer = random_layer(5, 8, 10, k=2, d_out=2)
    p_exp = ml.mlp_param_count(5, 2, 10, 2)
    assert layer.stored_params() == 8 * p_exp + 8 * 5
    assert layer.active_params() == 2 * p_exp + 8 * 5


def test_deep_moe_paths_and_counts():
    net = ml.moe_class_member(3, 4, 2, 8, [2, 5, 5, 1], dtype=torch.float64)
    x = torch.randn(50, 2, dtype=torch.float64)
    y, paths = net.forward_with_paths(x)
    assert y.shape == (50, 1) and paths.shape == (50, 3)
    assert torch.equal(y, net(x))
    assert net.active_params() == sum(layer.active_params() for layer in net.layers)


@pytest.mark.parametrize("bad, message", [
    (torch.randn(10, 4), "last dimension 3"),
    (torch.randn(10), "expected 2 dimensions"),
    (torch.tensor([[0.0, float("nan"), 1.0]]), "finite"),
    ([[0.0, 1.0, 2.0]], "torch tensor"),
])
def test_bad_inputs_raise_clear_errors(bad, message):
    layer = random_layer(3, 4, 8, k=1, dtype=torch.float32)
    with pytest.raises(ValueError, match=message):
        layer(bad)


def test_mismatched_router_and_layers_raise():
    experts = [ml.MLP(3, 1, 4) for _ in range(3)]
    with pytest.raises(ValueError, match="router over 3 experts, got one over 4"):
        ml.MoE(experts, ml.TopKGate(3, 4), 3, 1)
    a = random_layer(3, 2, 4, k=1, d_out=2)
    b = random_layer(3, 2, 4, k=1, d_out=1)
    with pytest.raises(ValueError, match="expected d_in = 2"):
        ml.DeepMoE([a, b])
    with pytest.raises(ValueError, match="expected 3 sizes"):
        ml.moe_class_member(2, 2, 2, 4, [1, 2])

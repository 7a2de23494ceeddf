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


def test_moe_rejects_inputs_that_do_not_fit():
    """Issue: routers declare their experts; explicit routings and dtypes are checked."""
    import pytest

    import moe_lib as ml
    from moe_lib.models.routing import Routing

    experts = [ml.MLP(2, 1, 4) for _ in range(2)]
    with pytest.raises(ValueError, match="router: expected a router over 2 experts, got one over 3"):
        ml.MoE(experts, ml.NearestPrototypeRouter(torch.zeros(3, 2)), 2, 1)
    with pytest.raises(ValueError, match="experts: expected at least one expert, got none"):
        ml.MoE([], ml.TopKGate(2, 1), 2, 1)

    class NoSize(torch.nn.Module):
        def forward(self, x):
            return None

    with pytest.raises(ValueError, match="expected a router that declares n_experts, got NoSize"):
        ml.MoE(experts, NoSize(), 2, 1)
    layer = ml.MoE(experts, ml.TopKGate(2, 2), 2, 1)
    x = torch.randn(5, 2)
    short = Routing(torch.zeros(4, 1, dtype=torch.long), torch.ones(4, 1))
    with pytest.raises(ValueError, match=r"routing.idx: expected one row per input \(5\), got 4"):
        layer(x, routing=short)
    neg = Routing(torch.full((5, 1), -1), torch.ones(5, 1))
    with pytest.raises(ValueError, match=r"expected expert indices in \[0, 1\], got values in \[-1"):
        layer(x, routing=neg)
    wshape = Routing(torch.zeros(5, 1, dtype=torch.long), torch.ones(5, 2))
    with pytest.raises(ValueError, match=r"routing.weight: expected shape \(5, 1\) \(as idx\), got"):
        layer(x, routing=wshape)
    with pytest.raises(ValueError, match="x: expected dtype torch.float32 .the experts. dtype., got torch.f"):
        layer(x.double())
    with pytest.raises(ValueError, match="x: expected last dimension 2"):
        layer(torch.randn(5, 3))

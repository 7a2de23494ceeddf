import pytest
import torch

import moe_lib as ml
from moe_lib import fitting as ft
from moe_lib import models as mo

F64 = torch.float64


@pytest.fixture(autouse=True)
def no_grad_and_seed():
    torch.manual_seed(0)
    with torch.no_grad():
        yield


def _two_layer(d_in=4, d_mid=6, E=3, same=True):
    block = ml.MLP(d_in, d_mid, 5, depth=3, dtype=F64)
    copies = [block] + [ml.MLP(d_in, d_mid, 5, depth=3, dtype=F64) for _ in range(E - 1)]
    if same:
        for c in copies[1:]:
            c.load_state_dict(block.state_dict())
    l1 = ml.MoE(copies, ml.TopKGate(d_in, E, dtype=F64), d_in, d_mid)
    l2 = ml.MoE([ml.MLP(d_mid, 2, 7, depth=3, dtype=F64) for _ in range(E)],
                ml.TopKGate(d_mid, E, dtype=F64), d_mid, 2)
    return ml.DeepMoE([l1, l2])


def test_mlp_router_takes_top_k_of_the_network_scores():
    net = ml.MLP(3, 5, 8, depth=2, dtype=F64)
    router = mo.MLPRouter(net, k=2)
    x = torch.randn(40, 3, dtype=F64)
    r = router(x)
    assert router.n_experts == 5 and r.idx.shape == (40, 2)
    assert torch.equal(r.idx[:, 0], torch.argmax(net(x), dim=1))
    layer = ml.MoE([ml.MLP(3, 1, 4, dtype=F64) for _ in range(5)], mo.MLPRouter(net), 3, 1)
    assert layer(x).shape == (40, 1)
    with pytest.raises(ValueError, match="moe_lib.MLP"):
        mo.MLPRouter(torch.nn.Linear(3, 5))
    with pytest.raises(ValueError, match="k"):
        mo.MLPRouter(net, k=6)


def test_voronoi_gate_is_the_nearest_centre():
    C = torch.randn(7, 5, dtype=F64) * torch.rand(7, 1, dtype=F64) * 3    # unequal norms
    x = torch.randn(500, 5, dtype=F64) * 2
    routes = mo.voronoi_gate(C)(mo.with_constant(x)).idx
    assert torch.equal(routes, ml.NearestPrototypeRouter(C)(x).idx)
    assert mo.with_constant(x).shape == (500, 6)


def test_dense_then_moe_and_shared_routed_rewrites_are_exact():
    net = _two_layer()
    x = torch.randn(100, 4, dtype=F64)
    ref = net(x)
    assert float((mo.as_dense_then_moe(net)(x) - ref).abs().max()) < 1e-12
    shared = mo.as_shared_routed(net)
    assert float((shared(x) - ref).abs().max()) < 1e-12
    merged = ml.DeepMoE([mo.merge_shared(layer) for layer in shared])
    assert float((merged(x) - ref).abs().max()) < 1e-12
    with pytest.raises(ValueError, match="identical experts"):
        mo.as_dense_then_moe(_two_layer(same=False))
    with pytest.raises(ValueError, match="2 MoE layers"):
        mo.as_dense_then_moe(ml.DeepMoE([net.layers[0]]))


def test_merge_mlps_sum_and_shared_routed_layer():
    a, b = ml.MLP(3, 2, 4, depth=3, dtype=F64), ml.MLP(3, 2, 6, depth=3, dtype=F64)
    x = torch.randn(30, 3, dtype=F64)
    m = mo.merge_mlps_sum(a, b)
    assert m.width == 10 and float((m(x) - a(x) - b(x)).abs().max()) < 1e-12
    with pytest.raises(ValueError, match="equal depth"):
        mo.merge_mlps_sum(a, ml.MLP(3, 2, 4, depth=2, dtype=F64))
    experts = [ml.MLP(3, 2, 6, depth=3, dtype=F64) for _ in range(4)]
    gate = ml.TopKGate(3, 4, k=2, dtype=F64)
    layer = mo.SharedRoutedMoE(a, experts, gate, 3, 2)
    manual = a(x) + ml.MoE(experts, gate, 3, 2)(x)
    assert float((layer(x) - manual).abs().max()) < 1e-12
    assert layer.active_params() == ml.n_params(a) + ml.MoE(experts, gate, 3, 2).active_params()
    # top-2 mixing: shared + sum_k alpha_k f_k = sum_k alpha_k (shared + f_k) since sum alpha = 1
    assert float((mo.merge_shared(layer)(x) - layer(x)).abs().max()) < 1e-12
    assert float(mo.zero_mlp(3, 2, 1, 3)(x).abs().max()) == 0.0


def test_autoencoder_expert_counts():
    for D, d, w in ((10, 2, 8), (50, 3, 5)):
        c = mo.autoencoder_expert_params(D, d, w, depth=3)
        module = mo.AutoencoderExpert(torch.nn.Linear(D, d), ml.MLP(d, 1, w, depth=3))
        assert c["total"] == ml.n_params(module) == (D + 1) * d + ml.mlp_param_count(d, 1, w, 3)
        assert c["full"] == ml.mlp_param_count(D, 1, D, 3)
    with pytest.raises(ValueError, match="d"):
        mo.autoencoder_expert_params(4, 5, 3)
    with pytest.raises(ValueError, match="code size"):
        mo.AutoencoderExpert(torch.nn.Linear(4, 2), ml.MLP(3, 1, 4))


def test_linear_autoencoder_is_pca_and_adam_approaches_it():
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(800, 1, generator=gen, dtype=F64)
    direction = torch.tensor([[1.0, 2.0, 2.0]], dtype=F64) / 3
    noise = 0.05 * torch.randn(800, 3, generator=gen, dtype=F64)
    x = t @ direction + noise + torch.tensor([1.0, 0.0, -1.0], dtype=F64)
    enc, dec, mse = ft.linear_autoencoder(x, 1)
    assert abs(float(enc.weight[0] @ direction[0])) == pytest.approx(1.0, abs=1e-2)
    centred = x - x.mean(dim=0)
    ev = torch.linalg.eigvalsh(centred.T @ centred / 800)
    assert mse == pytest.approx(float(ev[:2].sum()), rel=1e-9)       # the discarded variance
    with torch.enable_grad():
        _, adam = ft.train_linear_autoencoder(x, 1, steps=300, lr=3e-2, seed=0)
    assert mse <= adam < 3 * mse
    with pytest.raises(ValueError, match="d"):
        ft.linear_autoencoder(x, 4)

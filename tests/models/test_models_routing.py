import math

import pytest
import torch

import moe_lib as ml


def test_top_k_on_hand_made_scores():
    scores = torch.tensor([[0.1, 3.0, 2.0, -1.0], [5.0, 5.0, 1.0, 5.0]])
    r = ml.top_k(scores, 2)
    assert r.idx.tolist() == [[1, 2], [0, 1]]  # ties go to the lower index
    assert torch.allclose(r.weight[0], torch.softmax(torch.tensor([3.0, 2.0]), 0))
    assert torch.allclose(r.weight[1], torch.tensor([0.5, 0.5]))


def test_top1_weight_is_exactly_one():
    r = ml.top_k(torch.randn(1000, 7, dtype=torch.float64), 1)
    assert bool((r.weight == 1.0).all())


def test_bias_free_gate_has_no_bias_and_bias_gate_has_one():
    assert ml.TopKGate(3, 4, bias=False).linear.bias is None
    assert ml.TopKGate(3, 4, bias=True).linear.bias is not None


def test_gate_uses_its_matrix():
    gate = ml.TopKGate(2, 3, k=1, dtype=torch.float64)
    with torch.no_grad():
        gate.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    x = torch.tensor([[2.0, 1.0], [0.0, 3.0], [-1.0, -2.0]], dtype=torch.float64)
    assert gate(x).idx[:, 0].tolist() == [0, 1, 2]


def test_nearest_prototype_router_l2_and_linf():
    protos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[0.9, 0.1], [0.1, 0.8], [0.2, 0.2], [0.5, 0.5]], dtype=torch.float64)
    assert ml.NearestPrototypeRouter(protos, 2)(x).idx[:, 0].tolist() == [1, 2, 0, 0]
    assert ml.NearestPrototypeRouter(protos, math.inf)(x).idx[:, 0].tolist() == [1, 2, 0, 0]


def test_grid_router_cells_faces_and_corners():
    g = ml.GridRouter(2, 4)
    x = torch.tensor([[0.1, 0.1], [0.25, 0.0], [1.0, 1.0], [0.3, 0.99], [0.0, 0.75]],
                     dtype=torch.float64)
    # row-major index k1 * 4 + k2; faces go to the upper cell, x = 1 to the last cell
    assert g(x).idx[:, 0].tolist() == [0, 4, 15, 7, 3]


def test_grid_router_exact_on_every_face():
    for N in (3, 5, 7, 10, 49):
        j = torch.arange(N + 1, dtype=torch.float64)
        x = (j / N)[:, None]
        k = ml.GridRouter(1, N).cell_coords(x)[:, 0]
        assert k.tolist() == list(range(N)) + [N - 1]


def test_grid_router_agrees_with_nearest_centre():
    g = ml.GridRouter(3, 5)
    c = (torch.stack(torch.meshgrid(*[torch.arange(5)] * 3, indexing="ij"), -1).reshape(-1, 3)
         .double() + 0.5) / 5
    x = torch.rand(2000, 3, dtype=torch.float64)
    assert torch.equal(g(x).idx, ml.NearestPrototypeRouter(c, math.inf)(x).idx)
    assert torch.equal(g(x).idx, ml.NearestPrototypeRouter(c, 2)(x).idx)


@pytest.mark.parametrize("make, message", [
    (lambda: ml.TopKGate(3, 4, k=0), r"k: expected an integer in \[1, 4\], got 0"),
    (lambda: ml.TopKGate(3, 4, k=5), r"k: expected an integer in \[1, 4\], got 5"),
    (lambda: ml.top_k(torch.randn(3, 2), 3), r"got 3"),
    (lambda: ml.GridRouter(2, 3)(torch.tensor([[0.5, 1.5]])), r"points in \[0,1\]\^2"),
    (lambda: ml.NearestPrototypeRouter(torch.zeros(3, 2), norm=1), "expected one of"),
    (lambda: ml.TopKGate(3, 4)(torch.full((2, 3), float("nan"))), "NaN/inf"),
])
def test_bad_router_inputs(make, message):
    with pytest.raises(ValueError, match=message):
        make()

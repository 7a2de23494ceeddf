"""One battery for every router: what each promises alike (indices in range, weights summing to 1,
one row per input, the same answer twice), and the tie rule each documents."""

import pytest
import torch

import moe_lib as ml
from moe_lib import models as mo


def _unit(n_rows: int, d: int) -> torch.Tensor:
    return torch.rand(n_rows, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


ROUTERS = {
    "top-1 gate": lambda: ml.TopKGate(3, 5, k=1, dtype=torch.float64),
    "top-2 gate": lambda: ml.TopKGate(3, 5, k=2, bias=True, dtype=torch.float64),
    "nearest prototype l2": lambda: ml.NearestPrototypeRouter(_unit(6, 3)),
    "nearest prototype linf": lambda: ml.NearestPrototypeRouter(_unit(6, 3), norm=float("inf")),
    "grid": lambda: ml.GridRouter(3, 4),
    "MLP router": lambda: mo.MLPRouter(ml.MLP(3, 5, 8, dtype=torch.float64), k=2),
    "dyadic tree": lambda: mo.DyadicTreeRouter(3, 2),
    "k-d tree": lambda: mo.KDTreeRouter(3, 3),
    "fixed gate": lambda: mo.fixed_gate(_unit(4, 3)),
}


@pytest.mark.parametrize("name", ROUTERS)
def test_every_router_keeps_its_promises(name):
    torch.manual_seed(1)
    router = ROUTERS[name]()
    x = _unit(500, 3)
    r = router(x)
    assert r.idx.shape == r.weight.shape == (500, getattr(router, "k", 1))
    assert int(r.idx.min()) >= 0 and int(r.idx.max()) < router.n_experts
    assert torch.allclose(r.weight.sum(dim=1).double(), torch.ones(500, dtype=torch.float64))
    again = router(x)
    assert torch.equal(r.idx, again.idx) and torch.equal(r.weight, again.weight)
    assert r.checked(500, router.n_experts) is not None  # what MoE checks of a routing


def test_ties_go_where_each_router_says():
    """Top-k and nearest prototype: the lower index; grid and trees: the upper cell on a face."""
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    assert ml.top_k(scores, 1).idx.tolist() == [[1]]
    protos = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert ml.NearestPrototypeRouter(protos)(torch.tensor([[0.5, 0.0]])).idx.tolist() == [[0]]
    face = torch.tensor([[0.5, 0.25, 1.0]], dtype=torch.float64)
    grid, dyadic, kd = ml.GridRouter(3, 4), mo.DyadicTreeRouter(3, 2), mo.KDTreeRouter(3, 4)
    assert grid(face).idx.tolist() == dyadic(face).idx.tolist() == kd(face).idx.tolist()
    assert grid.cell_coords(face).tolist() == [[2, 1, 3]]

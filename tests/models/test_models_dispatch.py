import re

import pytest
import torch

import moe_lib as ml
from moe_lib.models.dispatch import choose_capacity, dense_reference, grouped_forward


@pytest.fixture(autouse=True)
def _seed():
    ml.seed_everything(0)


def layer(n_exp, k, dtype=torch.float32, d=5, d_out=3, width=12, depth=2, activation="relu"):
    experts = [ml.MLP(d, d_out, width, depth, activation, dtype) for _ in range(n_exp)]
    return ml.MoE(experts, ml.TopKGate(d, n_exp, k, dtype=dtype), d, d_out)


def random_routing(n, n_exp, k, dtype, n_used=None):
    """k distinct experts per row drawn from the first n_used experts (the others stay empty)."""
    n_used = n_exp if n_used is None else n_used
    idx = torch.stack([torch.randperm(n_used)[:k] for _ in range(n)])
    return ml.Routing(idx, torch.softmax(torch.randn(n, k, dtype=dtype), dim=1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("n_exp", [1, 3, 8, 64])
def test_grouped_equals_dense_reference(n_exp, k, dtype):
    if k > n_exp:
        pytest.skip("k > E")
    moe = layer(n_exp, k, dtype)
    x = torch.randn(400, 5, dtype=dtype)
    r = moe.route(x)
    y = grouped_forward(x, r, moe.experts)
    assert y.dtype == dtype and y.shape == (400, 3)
    assert (y - moe.dense_forward(x)).abs().max() <= 1e-6
    assert (y - dense_reference(x, r, moe.experts)).abs().max() <= 1e-6
    assert (y - moe(x, r)).abs().max() <= 1e-6


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n_exp, k, n_used", [(1, 1, 1), (3, 2, 3), (8, 2, 8), (64, 1, 64), (64, 2, 5)])
def test_segments_equal_the_padded_form_and_the_loop(n_exp, k, n_used, threads):
    # inference takes the segments form; with threads > 1 the experts run in groups on threads
    moe = layer(n_exp, k)
    x = torch.randn(400, 5)
    r = random_routing(400, n_exp, k, torch.float32, n_used=n_used)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            seg = grouped_forward(x, r, moe.experts, form="segments")
            auto = grouped_forward(x, r, moe.experts)
            pad = grouped_forward(x, r, moe.experts, form="padded")
            loop = moe(x, r)
        assert torch.get_num_threads() == threads  # restored after the threaded groups
    finally:
        torch.set_num_threads(before)
    assert torch.equal(seg, auto)
    for other in (pad, loop, dense_reference(x, r, moe.experts)):
        assert (seg - other).abs().max() <= 1e-6


def test_segments_take_prelu_and_deeper_experts_on_threads():
    moe = layer(6, 2, torch.float64, depth=3, activation="prelu")
    for e, f in enumerate(moe.experts):
        for m in f.net:
            if isinstance(m, ml.PReLU):
                m.a.data.fill_(0.1 * e)
    x = torch.randn(200, 5, dtype=torch.float64)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            y = grouped_forward(x, moe.route(x), moe.experts, form="segments")
    finally:
        torch.set_num_threads(before)
    assert torch.allclose(y, moe.dense_forward(x), atol=1e-12)


def test_the_form_is_checked():
    moe = layer(4, 2)
    x = torch.randn(10, 5)
    with pytest.raises(ValueError, match="form: expected 'auto' or 'padded' when a gradient is needed"):
        grouped_forward(x, moe.route(x), moe.experts, form="segments")
    with pytest.raises(ValueError, match="form"):
        grouped_forward(x, moe.route(x), moe.experts, form="packed")


@pytest.mark.parametrize("cost", [0.0, 4.0, 1e9])
def test_every_capacity_choice_is_exact(cost):
    # cost 0: small padded groups and many overflowing experts; 1e9: C = max load, no overflow
    moe = layer(8, 2, torch.float64)
    x = torch.randn(300, 5, dtype=torch.float64)
    r = moe.route(x)
    assert torch.allclose(grouped_forward(x, r, moe.experts, overflow_cost=cost),
                          dense_reference(x, r, moe.experts), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_experts_and_a_single_token(dtype):
    moe = layer(64, 2, dtype)
    x = torch.randn(50, 5, dtype=dtype)
    r = random_routing(50, 64, 2, dtype, n_used=5)  # 59 experts receive nothing
    assert (grouped_forward(x, r, moe.experts) - dense_reference(x, r, moe.experts)).abs().max() <= 1e-6
    x1 = torch.randn(1, 5, dtype=dtype)
    r1 = moe.route(x1)
    assert (grouped_forward(x1, r1, moe.experts) - moe.dense_forward(x1)).abs().max() <= 1e-6
    assert grouped_forward(x[:0], ml.Routing(r.idx[:0], r.weight[:0]), moe.experts).shape == (0, 3)


def test_prelu_and_deeper_experts():
    moe = layer(6, 2, torch.float64, depth=3, activation="prelu")
    for e, f in enumerate(moe.experts):  # distinct slopes so a mixed-up slope would show
        for m in f.net:
            if isinstance(m, ml.PReLU):
                m.a.data.fill_(0.1 * e)
    x = torch.randn(200, 5, dtype=torch.float64)
    assert torch.allclose(grouped_forward(x, moe.route(x), moe.experts), moe.dense_forward(x), atol=1e-12)


def test_non_mlp_experts_take_the_segment_loop():
    experts = [torch.nn.Linear(5, 3, dtype=torch.float64) for _ in range(4)]
    x = torch.randn(100, 5, dtype=torch.float64)
    r = random_routing(100, 4, 2, torch.float64)
    layer = ml.MoE(experts, ml.TopKGate(5, 4, 2, dtype=torch.float64), 5, 3)
    assert torch.allclose(grouped_forward(x, r, experts), layer(x, routing=r), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2])
def test_gradients_match_the_dense_reference(k, dtype):
    moe = layer(8, k, dtype)
    x = torch.randn(120, 5, dtype=dtype)
    r = random_routing(120, 8, k, dtype, n_used=6)
    target = torch.randn(120, 3, dtype=dtype)
    grads = []
    for fn in (grouped_forward, dense_reference):
        xg = x.clone().requires_grad_()
        wg = r.weight.clone().requires_grad_()
        moe.zero_grad()
        loss = ((fn(xg, ml.Routing(r.idx, wg), moe.experts) - target) ** 2).sum()
        loss.backward()
        grads.append([xg.grad, wg.grad] + [p.grad.clone() for p in moe.experts.parameters()])
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for g1, g2 in zip(*grads, strict=True):
        assert torch.allclose(g1, g2, atol=tol, rtol=0)


def test_stack_follows_parameter_updates():
    moe = layer(4, 1, torch.float64)
    x = torch.randn(40, 5, dtype=torch.float64)
    r = moe.route(x)
    with torch.no_grad():
        grouped_forward(x, r, moe.experts)  # builds the stack
        for p in moe.experts.parameters():
            p.mul_(1.5)  # in place: the stack aliases the parameters
        moe.experts[2].net[0].weight = torch.nn.Parameter(torch.randn(12, 5, dtype=torch.float64))
        assert torch.allclose(grouped_forward(x, r, moe.experts), dense_reference(x, r, moe.experts))


def test_choose_capacity():
    assert choose_capacity(torch.tensor([5, 5, 5, 5])) == 5
    assert choose_capacity(torch.tensor([0, 0, 0, 7])) == 7  # 4 x 7 padded rows < 7 rows + one op (32)
    assert choose_capacity(torch.tensor([0, 0, 0, 7]), overflow_cost=1.0) == 0  # now the op is cheaper
    assert choose_capacity(torch.tensor([1, 1, 1, 200]), overflow_cost=8.0) == 1


@pytest.mark.parametrize("make, message", [
    (lambda x, r: (x[:, :4], r), "x: expected last dimension 5"),
    (lambda x, r: (x[0], r), "x: expected 2 dimensions"),
    (lambda x, r: (x.double(), r), re.escape("x: expected dtype torch.float32 (the experts' parameter "
                                            "dtype), got torch.float64")),
    (lambda x, r: (x, ml.Routing(r.idx[:5], r.weight[:5])), r"routing.idx: expected shape \(10, k\)"),
    (lambda x, r: (x, ml.Routing(r.idx, r.weight[:, :1])),
     r"routing.weight: expected shape \(10, 2\) \(as routing.idx\), got \(10, 1\)"),
    (lambda x, r: (x, ml.Routing(r.idx + 3, r.weight)), r"expert indices in \[0, 3\], got values in"),
    (lambda x, r: (x, ml.Routing(r.idx - 9, r.weight)), r"expert indices in \[0, 3\], got values in \[-"),
    (lambda x, r: (x, ml.Routing(r.idx.float(), r.weight)), "routing.idx: expected an integer tensor"),
    (lambda x, r: (x, ml.Routing(r.idx, r.idx)), "routing.weight: expected a floating-point tensor"),
    (lambda x, r: (x, (r.idx, r.weight)), "routing: expected a Routing"),
])
def test_bad_inputs_raise(make, message):
    moe = layer(4, 2)
    x = torch.randn(10, 5)
    xb, rb = make(x, moe.route(x))
    with pytest.raises(ValueError, match=message):
        grouped_forward(xb, rb, moe.experts)


def test_no_experts_raises():
    with pytest.raises(ValueError, match="experts: expected at least one expert"):
        grouped_forward(torch.randn(3, 5), ml.Routing(torch.zeros(3, 1, dtype=torch.long),
                                                      torch.ones(3, 1)), [])

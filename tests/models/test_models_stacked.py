import pytest
import torch

import moe_lib as ml
from moe_lib.models.stacked import StackedMoE, stacked_class_members


@pytest.fixture(autouse=True)
def _seed():
    ml.seed_everything(0)


@pytest.mark.parametrize("k,depth,bias", [(1, 2, False), (1, 2, True), (1, 3, False),
                                          (2, 3, True), (3, 2, False)])
def test_stack_equals_deep_moe_built_from_the_same_seeds(k, depth, bias):
    seeds = [3, 7, 11]
    stack = stacked_class_members([5, 4, 3], 3, 9, seeds, depth=depth, k=k, gate_bias=bias)
    x = torch.randn(2000, 5, dtype=torch.float64)
    out, paths = stack.forward_with_paths(x)
    for s, sd in enumerate(seeds):
        torch.manual_seed(sd)
        ref = ml.moe_class_member(2, 3, depth, 9, [5, 4, 3], k=k, gate_bias=bias,
                                  dtype=torch.float64)
        ref_out, ref_paths = ref.forward_with_paths(x)
        assert (out[s] - ref_out).abs().max() < 1e-12
        assert torch.equal(paths[s], ref_paths)


def test_mixed_widths_and_input_sizes_compute_each_unpadded_model():
    stack = stacked_class_members([8, 2], 4, [5, 16, 3], [0, 1, 2], in_dims=[8, 3, 6])
    x = torch.randn(1000, 8, dtype=torch.float64)
    out = stack(x)
    for s in range(3):
        small = stack.to_deep_moe(s)
        assert small.d_in == stack.in_dims[s]
        assert {f.width for f in small.layers[0].experts} == {stack.widths[s]}
        assert (out[s] - small(x[:, :stack.in_dims[s]])).abs().max() < 1e-12
        assert stack.stored_params(s) == small.stored_params()
        assert stack.active_params(s) == small.active_params()


def test_padded_entries_get_no_gradient_and_stay_zero():
    stack = stacked_class_members([6, 2], 3, [4, 8], [0, 1], in_dims=[2, 6])
    x = torch.randn(64, 6, dtype=torch.float64)   # nonzero in the coordinates model 0 ignores
    opt = torch.optim.Adam(stack.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        stack(x).pow(2).sum().backward()
        opt.step()
    assert stack.weights[0][0, :, 4:, :].abs().max() == 0       # hidden units beyond width 4
    assert stack.weights[0][0, :, :, 2:].abs().max() == 0       # input columns beyond D = 2
    assert stack.weights[1][0, :, :, 4:].abs().max() == 0
    assert stack.gate_w[0][0, :, 2:].abs().max() == 0


def test_conversion_round_trip_keeps_the_function():
    models = []
    for sd in (0, 1):
        torch.manual_seed(sd)
        models.append(ml.moe_class_member(3, 2, 2, 6, [4, 3, 3, 1], dtype=torch.float64))
    stack = StackedMoE.from_deep_moe(models)
    x = torch.randn(500, 4, dtype=torch.float64)
    for s in range(2):
        back = stack.to_deep_moe(s)
        assert torch.allclose(back(x), models[s](x), atol=1e-14, rtol=0)


def test_float32_stack_matches_moe_lib_to_1e_6():
    stack = stacked_class_members([3, 3, 2], 3, 32, [0, 1], dtype=torch.float32)
    x = 3 * torch.rand(3000, 3)
    out = stack(x)
    for s in range(2):
        ref = stack.to_deep_moe(s)
        assert ref.layers[0].experts[0].linears[0].weight.dtype == torch.float32
        _, paths = stack.forward_with_paths(x)
        same = (paths[s] == ref.forward_with_paths(x)[1]).all(dim=1)
        assert same.float().mean() > 0.999     # a float32 near-tie may flip a route
        assert (out[s][same] - ref(x)[same]).abs().max() < 1e-6


def test_ties_go_to_the_lower_expert_as_in_top_k():
    stack = stacked_class_members([2, 1], 4, 3, [0], k=2)
    with torch.no_grad():
        stack.gate_w[0].zero_()
    _, idx = stack.layer_forward(0, torch.randn(1, 10, 2, dtype=torch.float64))
    assert torch.equal(idx[0], torch.tensor([[0, 1]] * 10))


def test_router_gradient_modes():
    x = torch.randn(1, 50, 3, dtype=torch.float64)
    for mode, expect_grad in (("selected", False), ("straight_through", True)):
        stack = stacked_class_members([3, 1], 3, 4, [0], router_grad=mode)
        y0 = stack(x).detach()
        stack(x).pow(2).sum().backward()
        g = stack.gate_w[0].grad
        assert (g is not None and bool(g.abs().max() > 0)) == expect_grad
        assert torch.equal(stack(x).detach(), y0)   # same forward value in both modes
    ref = stacked_class_members([3, 1], 3, 4, [0], router_grad="selected")
    assert torch.equal(ref(x), stack(x))


def test_bad_inputs_raise_clear_errors():
    stack = stacked_class_members([3, 1], 2, 4, [0, 1])
    with pytest.raises(ValueError, match="expected shape"):
        stack(torch.randn(3, 10, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="last dimension 3"):
        stack(torch.randn(10, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="one value per model"):
        StackedMoE([3, 1], 2, [4, 5, 6], n_models=2)
    with pytest.raises(ValueError, match="router_grad"):
        StackedMoE([3, 1], 2, 4, router_grad="gumbel")
    with pytest.raises(ValueError, match="in_dims"):
        StackedMoE([3, 1], 2, 4, in_dims=[5])
    with pytest.raises(ValueError, match="k: expected"):
        StackedMoE([3, 1], 2, 4, k=3)
    with pytest.raises(ValueError, match="model"):
        stack.to_deep_moe(2)
    with pytest.raises(ValueError, match="seeds"):
        stacked_class_members([3, 1], 2, 4, [])
    with pytest.raises(ValueError, match="at least one DeepMoE"):
        StackedMoE.from_deep_moe([])
    a = ml.moe_class_member(1, 2, 2, 4, [3, 1])
    b = ml.moe_class_member(1, 3, 2, 4, [3, 1])
    with pytest.raises(ValueError, match=r"models\[1\]"):
        StackedMoE.from_deep_moe([a, b])

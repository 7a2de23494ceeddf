import pytest
import torch

from moe_lib.experiments import primer as xpr
from moe_lib.models.experts import mlp_param_count


def test_touched_by_gradient_counts_k_experts_and_no_gate_for_top1():
    torch.manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64)
    t1 = xpr.touched_by_gradient(xpr.random_layer(3, 6, 4, k=1), x)
    assert t1["experts"] == [1] * 5
    assert t1["gate_params"] == [0] * 5          # alpha = e^g / e^g: no gradient reaches W_R
    assert max(t1["expert_params"]) <= mlp_param_count(3, 1, 4, 2)
    t2 = xpr.touched_by_gradient(xpr.random_layer(3, 6, 4, k=2), x)
    assert t2["experts"] == [2] * 5
    assert max(t2["gate_params"]) <= 2 * 3


def test_touched_sweep_skips_E_below_k_and_reports_bounds():
    torch.manual_seed(1)
    rows = xpr.touched_sweep([1, 2, 4], d_in=3, width=4, k=2, n_inputs=3)
    assert [r["E"] for r in rows] == [2, 4]
    assert all(r["experts_min"] == r["experts_max"] == 2 for r in rows)
    assert all(r["expert_bound"] == 2 * mlp_param_count(3, 1, 4, 2) for r in rows)


def test_touched_by_gradient_rejects_wrong_width():
    with pytest.raises(ValueError, match="x"):
        xpr.touched_by_gradient(xpr.random_layer(3, 2, 4, k=1), torch.zeros(2, 5, dtype=torch.float64))

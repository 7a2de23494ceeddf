import pytest
import torch

import moe_lib as ml
from moe_lib import validate
from moe_lib.models.experts import relu_mlp_from_weights


@pytest.mark.parametrize("d_in, d_out, width, depth, act", [
    (3, 1, 8, 2, "relu"), (5, 2, 4, 3, "prelu"), (2, 2, 7, 1, "relu")])
def test_param_count_formula(d_in, d_out, width, depth, act):
    net = ml.MLP(d_in, d_out, width, depth, act)
    assert ml.n_params(net) == ml.mlp_param_count(d_in, d_out, width, depth, act)


def test_prelu_is_max_x_ax():
    act = ml.PReLU(0.1)
    x = torch.linspace(-2, 2, 9)
    assert torch.allclose(act(x), torch.maximum(x, 0.1 * x))


def test_relu_mlp_from_weights_is_exact():
    w1 = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    net = relu_mlp_from_weights([w1, torch.tensor([[1.0, -1.0]], dtype=torch.float64)],
                                [torch.zeros(2, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]
    assert torch.equal(net(x), x)  # ReLU(x) - ReLU(-x) = x
    assert ml.n_nonzero(net) == 4
    with pytest.raises(ValueError, match="equal hidden widths"):
        relu_mlp_from_weights([torch.ones(2, 1), torch.ones(3, 2), torch.ones(1, 3)],
                              [torch.ones(2), torch.ones(3), torch.ones(1)])


def test_non_finite_parameters_are_reported():
    net = ml.MLP(2, 1, 3)
    with torch.no_grad():
        net.linears[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite parameters, got NaN/inf in 'net.0.weight'"):
        validate.finite_parameters(net, "expert")


def test_validate_messages():
    with pytest.raises(ValueError, match="expected an integer, got float 2.5"):
        validate.integer(2.5, "width")
    with pytest.raises(ValueError, match="finite number > 0, got -1"):
        validate.positive(-1, "eps")
    with pytest.raises(ValueError, match="width: expected an integer in \\[1, inf\\], got 0"):
        ml.MLP(2, 1, 0)


def test_claims_report_passes_and_fails():
    c = ml.Claims("X-1")
    c.le("small", 0.1, 0.2, kind="theorem")
    c.equal("count", 9, 9, kind="identity")
    c.ge("derived step", 2.0, 1.0, kind="derived", why="Lemma A: x >= 1")
    c.le("known gap", 0.5, 0.1, kind="theorem", finding="the constant is not known")
    rep = c.report()
    assert rep.counts()["theorem"] == 2
    assert repr(rep).splitlines()[0] == "X-1: 4 claims (2 theorem, 1 derived, 1 identity)"
    assert "[theorem] known gap: finding: does not hold; measured 0.5, required <= 0.1" in repr(rep)
    assert "| small | theorem | 0.1 | <= 0.2 | holds |" in rep._repr_markdown_()
    rec = rep._repr_json_()["moebook_claims"]
    assert rec["result"] == "X-1" and [r["kind"] for r in rec["claims"]][:2] == ["theorem", "identity"]
    bad = ml.Claims("X-2")
    bad.le("error below eps", 0.3, 0.2, kind="theorem")
    bad.ge("nan is never enough", float("nan"), 0.0, kind="theorem")
    bad.between("slope", -0.7, -0.55, -0.45, kind="theorem")
    bad.close("ratio", 1.5, 1.0, 0.1, kind="theorem")
    bad.le("stale finding", 0.0, 1.0, kind="theorem", finding="thought to fail")
    with pytest.raises(ml.ClaimFailed, match="4 of 5|5 of 5") as e:
        bad.report()
    assert "error below eps (FAILS: measured 0.3, required <= 0.2)" in str(e.value)
    assert "FINDING IS STALE" in str(e.value)
    with pytest.raises(ml.ClaimFailed, match="no claim was checked"):
        ml.Claims("X-3").report()
    with pytest.raises(ValueError, match="kind must be one of theorem, derived, identity, got 'thm'"):
        ml.Claims("X-4").le("a", 1, 2, kind="thm")
    with pytest.raises(ValueError, match="derived claim needs why="):
        ml.Claims("X-5").le("a", 1, 2, kind="derived")


def test_loglog_slope():
    m = [10, 100, 1000]
    assert ml.loglog_slope(m, [x ** -0.5 for x in m]) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="positive finite"):
        ml.loglog_slope([1, 2], [0.0, 1.0])

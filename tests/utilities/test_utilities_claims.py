import pytest

import moe_lib as ml


def test_keyed_findings_apply_only_when_listed():
    def run(findings):
        c = ml.Claims("X-1", findings=findings)
        c.le("budget-bound factor", 0.5, 0.1, kind="theorem", finding="budget too small", key="ii")
        c.le("depth wins", 0.0, 1.0, kind="theorem", finding="within seed noise", key="iii")
        return c
    rep = run(["ii"]).report()
    assert [r.status for r in rep.rows] == ["finding: does not hold", "holds"]
    with pytest.raises(ml.ClaimFailed, match="budget-bound factor .FAILS"):
        run([]).report()   # not listed: a plain check, and it fails
    with pytest.raises(ml.ClaimFailed, match="depth wins .FINDING IS STALE"):
        run(["ii", "iii"]).report()   # listed but holds: the finding is stale


def test_listed_keys_must_name_claims():
    c = ml.Claims("X-2", findings=["ii", "iv"])
    c.le("a", 0.5, 0.1, kind="theorem", finding="known", key="ii")
    message = r"findings: 'iv' names no claim of X-2; expected keys among \['ii'\]"
    with pytest.raises(ValueError, match=message):
        c.report()
    with pytest.raises(ValueError, match="findings: expected a list of claim keys"):
        ml.Claims("X-3", findings="ii")

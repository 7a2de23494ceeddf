import numpy as np
import pytest

from moe_lib import analysis as an


def test_slope_interval_exact_power_law_has_zero_spread():
    m = np.array([8, 16, 32, 64])
    r = an.slope_interval(m, 3.0 * m ** -1.5)
    assert r["slope"] == pytest.approx(-1.5)
    assert r["se"] == pytest.approx(0.0, abs=1e-12)
    assert r["low"] == pytest.approx(r["high"])
    assert r["n"] == 4


def test_slope_interval_matches_the_textbook_formula_and_covers_the_truth():
    rng = np.random.default_rng(0)
    m = 2.0 ** np.arange(3, 10)
    y = m ** -0.5 * np.exp(0.1 * rng.standard_normal(m.size))
    r = an.slope_interval(m, y, level=0.95)
    lx, ly = np.log(m), np.log(y)
    b, a = np.polyfit(lx, ly, 1)
    se = np.sqrt(((ly - a - b * lx) ** 2).sum() / (m.size - 2) / ((lx - lx.mean()) ** 2).sum())
    assert r["slope"] == pytest.approx(b) and r["se"] == pytest.approx(se)
    assert r["t"] == pytest.approx(2.5706, abs=1e-4)          # t_{0.975, 5}
    assert r["low"] < -0.5 < r["high"]


def test_slope_interval_validates():
    with pytest.raises(ValueError, match=">= 3 points"):
        an.slope_interval([1, 2], [1, 2])
    with pytest.raises(ValueError, match="level"):
        an.slope_interval([1, 2, 3], [1, 2, 4], level=1.5)
    with pytest.raises(ValueError, match="positive"):
        an.slope_interval([1, 2, 3], [1, -2, 4])

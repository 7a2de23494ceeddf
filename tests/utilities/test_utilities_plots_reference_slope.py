import warnings

import matplotlib

matplotlib.use("Agg")

import moe_lib as ml  # noqa: E402


def test_reference_slope_takes_a_linestyle_without_warning():
    fig, ax = ml.plots.figure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ml.plots.reference_slope(ax, [1, 2, 4], 1.0, -2.0, "m^-2", linestyle=":")
        ml.plots.reference_slope(ax, [1, 2, 4], 1.0, -0.5, "m^-1/2")
    styles = [line.get_linestyle() for line in ax.get_lines()]
    assert styles == [":", "--"]
    assert ax.get_lines()[1].get_ydata()[-1] == 0.5

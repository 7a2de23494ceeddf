import math

import matplotlib

matplotlib.use("Agg")

import moe_lib as ml  # noqa: E402


def test_rate_plot_reports_the_fitted_slopes():
    fig, ax = ml.plots.figure()
    x = [1, 2, 4, 8]
    slopes = ml.plots.rate_plot(ax, {"a": (x, [v ** -1.0 for v in x])}, reference={-1.0: "m^-1"})
    assert math.isclose(slopes["a"], -1.0)
    assert "slope -1.00" in ax.get_legend().get_texts()[0].get_text()


def test_routing_cell_map_colours_by_label():
    fig, ax = ml.plots.figure()
    art = ml.plots.routing_cell_map(ax, [[0, 0], [1, 1], [0, 1]], [0, 2, 1])
    assert art.get_array().tolist() == [0, 2, 1]


def test_paper_vs_ours_rows_and_markdown():
    rows, md = ml.plots.paper_vs_ours({"slope": (-2.0, -1.0), "count": (None, 3)})
    assert rows[0]["ratio"] == 0.5 and rows[1]["ratio"] is None
    assert md.splitlines()[2] == "| slope | -2 | -1 | 0.5 |"


def test_reference_slope_takes_linestyle_and_colour_without_warning():
    import warnings

    fig, ax = ml.plots.figure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ml.plots.reference_slope(ax, [1, 2, 4], 1.0, -2.0, "ref", linestyle=":", color="red")
        ml.plots.reference_slope(ax, [1, 2, 4], 1.0, -1.0, "ref2")
    a, b = ax.get_lines()
    assert a.get_linestyle() == ":" and a.get_color() == "red" and b.get_linestyle() == "--"
    assert math.isclose(a.get_ydata()[-1], 4.0 ** -2)

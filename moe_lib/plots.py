"""One figure style for the whole book."""

from __future__ import annotations

import matplotlib.pyplot as plt

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.markersize": 5,
}


def use_style() -> None:
    plt.rcParams.update(STYLE)


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2):
    """A figure with ncols x nrows panels of the book's panel size; returns (fig, axes)."""
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             constrained_layout=True, squeeze=False)
    return fig, (axes[0, 0] if axes.size == 1 else axes.ravel())


def reference_slope(ax, x, y0: float, slope: float, label: str, **kw) -> None:
    """Draw y = y0 (x / x[0])^slope on a log-log axis."""
    x0 = x[0]
    ax.plot(x, [y0 * (xi / x0) ** slope for xi in x], "--", color="gray", label=label, **kw)

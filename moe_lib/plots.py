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
    """Draw y = y0 (x / x[0])^slope on a log-log axis: dashed gray unless ``kw`` sets
    ``linestyle`` (or ``ls``) and ``color``, which are passed once (no format-string clash)."""
    x0 = x[0]
    if "ls" not in kw:
        kw.setdefault("linestyle", "--")
    kw.setdefault("color", "gray")
    ax.plot(x, [y0 * (xi / x0) ** slope for xi in x], label=label, **kw)


def rate_plot(ax, curves: dict, reference: dict | None = None, fit_slope: bool = True,
              xlabel: str = "", ylabel: str = "", marker: str = "o") -> dict:
    """Log-log curves with reference slopes; the fitted slope of each curve goes in its legend.

    ``curves`` {label: (x, y)}; ``reference`` {slope: label} draws y = y0 (x / x0)^slope through
    the first point of the first curve. Returns {label: fitted slope} (``loglog_slope``).
    """
    import numpy as np

    slopes = {}
    for label, (x, y) in curves.items():
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if fit_slope:
            slopes[label] = float(np.polyfit(np.log(x), np.log(y), 1)[0])
            label = f"{label} (slope {slopes[label]:.2f})"
        ax.loglog(x, y, marker=marker, label=label)
    if reference and curves:
        x0, y0 = (list(v) for v in next(iter(curves.values())))
        for slope, label in reference.items():
            reference_slope(ax, x0, y0[0], slope, label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    return slopes


def routing_cell_map(ax, x, labels, n_labels: int | None = None, title: str = "", s: float = 2.0):
    """Scatter of 2-D points x (N, 2) coloured by an integer label (expert or path), one colour
    per label from a qualitative map; returns the scatter artist."""
    import numpy as np

    x, labels = np.asarray(x), np.asarray(labels)
    n = int(labels.max()) + 1 if n_labels is None else n_labels
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10", n)
    art = ax.scatter(x[:, 0], x[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=n - 0.5, s=s,
                     linewidths=0)
    ax.set_aspect("equal")
    ax.set_title(title)
    return art


def paper_vs_ours(rows: dict, digits: int = 3) -> tuple[list[dict], str]:
    """{quantity: (paper value, our value)} -> (rows with paper, ours, ratio = ours / paper, for
    glue) and a markdown table. A paper value None or 0 gives ratio None."""
    out = []
    for name, (paper, ours) in rows.items():
        ratio = None if not paper else float(ours) / float(paper)
        out.append({"quantity": name, "paper": paper, "ours": float(ours), "ratio": ratio})

    def f(v):
        return "n/a" if v is None else f"{v:.{digits}g}"

    lines = ["| quantity | paper | ours | ours / paper |", "|---|---|---|---|"]
    lines += [f"| {r['quantity']} | {f(r['paper'])} | {f(r['ours'])} | {f(r['ratio'])} |" for r in out]
    return out, "\n".join(lines)

"""Drivers for P1-EXP (our protocol): grid regression and digits classification, MoMLP vs one MLP.

MoMLP here: a hard router (the flat grid of P1 for regression, nearest k-means centre for digits)
and K one-hidden-layer ReLU experts, expert k trained only on the training points routed to k.
All K experts are held as batched tensors and trained together by ``fit``: their parameters are
disjoint, so the summed loss gives each expert exactly the gradient of its own cell's points, and
Adam, being coordinate-wise, trains each as it would alone (up to how the minibatch falls into
cells). The baseline is one MLP of the same depth whose width makes its parameter count the
MoMLP's total (rounded to the nearest width).

Classification uses the square loss on one-hot targets (the shared training loop ``fit`` minimises
the square loss); the predicted class is the argmax output.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import validate
from ..fitting.train import dataset_sampler, fit
from ..models.experts import MLP, n_params
from ..models.routing import GridRouter

TARGETS = ("f_s", "f_r", "f_z")


def target(name: str, x: np.ndarray) -> np.ndarray:
    """The three Lipschitz targets of Part I on x (N, n): sine sum, l-inf distance, distance to Z/5."""
    validate.choice(name, "target", TARGETS)
    n = x.shape[1]
    if name == "f_s":
        return np.sin(2 * np.pi * x).sum(axis=1) / (2 * np.pi * n)
    if name == "f_r":
        return np.abs(x - 1 / 3).max(axis=1)
    s = x.sum(axis=1) * 5
    return np.abs(s - np.round(s)) / 5


def grid_points(n: int, s: int) -> np.ndarray:
    """The s^n vertices of the regular grid on [0,1]^n, shape (s^n, n)."""
    n = validate.integer(n, "n", low=1, high=4)
    s = validate.integer(s, "s", low=2)
    g = np.linspace(0.0, 1.0, s)
    return np.stack(np.meshgrid(*[g] * n, indexing="ij"), axis=-1).reshape(-1, n)


def split(size: int, seed: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, test) index split: test is round(test_fraction * size) points."""
    size = validate.integer(size, "size", low=2)
    perm = np.random.default_rng(seed).permutation(size)
    n_test = max(1, round(test_fraction * size))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def grid_route(x: torch.Tensor, cells_per_axis: int) -> torch.Tensor:
    """Flat grid router of P1 (``moe_lib.GridRouter``): one cell index per row."""
    return GridRouter(x.shape[1], cells_per_axis)(x).idx[:, 0]


def nearest_route(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Nearest centre (squared Euclidean), ties to the lower index."""
    return torch.cdist(x.double(), centres.double()).argmin(dim=1)


class RoutedExperts(nn.Module):
    """K one-hidden-layer ReLU experts d_in -> width -> d_out behind a hard router ``route(x)``."""

    def __init__(self, route, K: int, d_in: int, d_out: int, width: int, seed: int):
        super().__init__()
        self.route = route
        self.K = validate.integer(K, "K", low=1)
        width = validate.integer(width, "width", low=1)
        g = torch.Generator().manual_seed(validate.integer(seed, "seed", low=0))
        b1, b2 = 1 / math.sqrt(d_in), 1 / math.sqrt(width)
        self.w1 = nn.Parameter((torch.rand(K, d_in, width, generator=g) * 2 - 1) * b1)
        self.c1 = nn.Parameter((torch.rand(K, width, generator=g) * 2 - 1) * b1)
        self.w2 = nn.Parameter((torch.rand(K, width, d_out, generator=g) * 2 - 1) * b2)
        self.c2 = nn.Parameter((torch.rand(K, d_out, generator=g) * 2 - 1) * b2)

    @property
    def expert_parameters(self) -> int:
        """Parameters of one expert: what must be loaded for one input."""
        return sum(p[0].numel() for p in (self.w1, self.c1, self.w2, self.c2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.route(x)
        h = torch.relu(torch.einsum("bi,bij->bj", x, self.w1[k]) + self.c1[k])
        return torch.einsum("bj,bjo->bo", h, self.w2[k]) + self.c2[k]


def baseline_width(total: int, d_in: int, d_out: int) -> int:
    """Width w of one hidden layer with (d_in + 1) w + (w + 1) d_out closest to ``total``."""
    return max(1, round((total - d_out) / (d_in + 1 + d_out)))


def regression_run(n: int, s: int, cells_per_axis: int, target_name: str, width: int, steps: int,
                   seed: int, batch_size: int = 256, lr: float = 3e-3) -> dict:
    """One seed: MoMLP with (cells_per_axis)^n grid experts vs one MLP of equal total size."""
    x = grid_points(n, s)
    y = target(target_name, x)
    tr, te = split(x.shape[0], seed)
    X = torch.tensor(x)
    Y = torch.tensor(y)[:, None]
    K = cells_per_axis ** n
    torch.manual_seed(seed)
    moe = RoutedExperts(lambda z: grid_route(z, cells_per_axis), K, n, 1, width, seed).double()
    cells = grid_route(X[tr], cells_per_axis).numpy()
    total = sum(p.numel() for p in moe.parameters())
    base = MLP(n, 1, baseline_width(total, n, 1), depth=2, dtype=torch.float64)
    out = {"n": n, "K": K, "seed": seed, "target": target_name, "moe_total": total,
           "moe_loaded": moe.expert_parameters, "base_params": n_params(base),
           "cell_sizes": np.bincount(cells, minlength=K), "n_train": tr.size}
    for name, model in (("moe", moe), ("base", base)):
        fit(model, dataset_sampler(X[tr], Y[tr]), steps=steps, batch_size=batch_size, lr=lr,
            seeds=[seed], threads=1, desc=f"P1-EXP {name}")
        with torch.no_grad():
            err = (model(X[te]) - Y[te]).abs().numpy()[:, 0]
        out[f"{name}_mse"] = float((err ** 2).mean())
        out[f"{name}_max"] = float(err.max())
    return out


def digits_data():
    """scikit-learn's bundled 8x8 digits (1797 images, shipped with the package), pixels / 16."""
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.data / 16.0, d.target


def kmeans_centres(x: np.ndarray, K: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    km = KMeans(n_clusters=validate.integer(K, "K", low=1), n_init=3, random_state=seed)
    return km.fit(x).cluster_centers_


def digits_run(K: int, width: int, steps: int, seed: int, batch_size: int = 128,
               lr: float = 3e-3) -> dict:
    """One seed: k-means-routed MoMLP (K experts, each trained on its cluster) vs one MLP, digits."""
    x, labels = digits_data()
    tr, te = split(x.shape[0], seed)
    X = torch.tensor(x)
    Y = torch.nn.functional.one_hot(torch.tensor(labels), 10).double()
    centres = torch.tensor(kmeans_centres(x[tr], K, seed))
    torch.manual_seed(seed)
    moe = RoutedExperts(lambda z: nearest_route(z, centres), K, x.shape[1], 10, width, seed).double()
    total = sum(p.numel() for p in moe.parameters())
    base = MLP(x.shape[1], 10, baseline_width(total, x.shape[1], 10), depth=2, dtype=torch.float64)
    cells = nearest_route(X[tr], centres).numpy()
    out = {"K": K, "seed": seed, "moe_total": total, "moe_loaded": moe.expert_parameters,
           "base_params": n_params(base), "cell_sizes": np.bincount(cells, minlength=K),
           "n_train": tr.size}
    for name, model in (("moe", moe), ("base", base)):
        fit(model, dataset_sampler(X[tr], Y[tr]), steps=steps, batch_size=batch_size, lr=lr,
            seeds=[seed], threads=1, desc=f"P1-EXP {name}")
        with torch.no_grad():
            pred = model(X[te]).argmax(dim=1).numpy()
        out[f"{name}_acc"] = float((pred == labels[te]).mean())
    return out


def bootstrap_median_interval(values, n_boot: int = 2000, level: float = 0.9, seed: int = 0):
    """Percentile bootstrap interval of the median over seeds: (low, high)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"values: expected >= 2 values (one per seed), got shape {v.shape}")
    rng = np.random.default_rng(seed)
    med = np.median(v[rng.integers(0, v.size, (n_boot, v.size))], axis=1)
    a = (1 - level) / 2
    return float(np.quantile(med, a)), float(np.quantile(med, 1 - a))


def verdict(comparisons: list[tuple[str, float, float]], prefix: str) -> str:
    """'competitive at K = 4, 16; not competitive at K = 64' for the (name, value, threshold) rows
    whose name starts with ``prefix`` (names read '<prefix>, K = <K>: ...'; competitive: value <= threshold).
    """
    rows = [(name.split(":")[0].split("K = ")[1], v <= thr) for name, v, thr in comparisons
            if name.startswith(prefix)]
    yes, no = [k for k, ok in rows if ok], [k for k, ok in rows if not ok]
    parts = []
    if yes:
        parts.append("competitive at " + ("every K" if not no else "K = " + ", ".join(yes)))
    if no:
        parts.append("not competitive at " + ("any K" if not yes else "K = " + ", ".join(no)))
    return "; ".join(parts)


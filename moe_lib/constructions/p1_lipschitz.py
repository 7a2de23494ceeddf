"""Explicit MoMLPs for Lipschitz targets on [0,1]^n (our reconstruction of Kratsios et al., P1-R1/R2).

Cells: a uniform grid of N^n cubes of side delta = 1/N, routed by a k-d tree (or the flat router).
Target f with |f(x) - f(y)| <= lam ||x - y||_inf.

- E0, constant experts E_k = f(c_k) at the cell centre: error <= lam delta / 2.
- E1, piecewise-linear experts: each cell is cut into m^n sub-cubes of side h = delta/m, and f is
  interpolated at the (m+1)^n nodes on the Kuhn (Freudenthal) triangulation. Error <= lam h, since
  on a simplex |f(x) - sum_j beta_j f(v_j)| <= sum_j beta_j |f(x) - f(v_j)| and the simplex has
  l-infinity diameter h. As a ReLU network the expert is sum_v f(v) phi((x - v)/h) with the hat
  phi(z) = relu(1 - max(0, max_i z_i) + min(0, min_i z_i)).

Two evaluations of E1, equal up to rounding: ``kuhn`` (sort the local coordinates, n+1 weights;
what the sup-error sweeps use) and ``relu`` (the ReLU network itself, all (m+1)^n hat units).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import validate
from ..models.momlp import ConstantBank, MoMLP
from ..models.routing import GridRouter
from ..models.routing_tree import KDTreeRouter, cell_centres, unit_cube_points

# ----------------------------------------------------------------------------- targets


def f_sin(x: torch.Tensor) -> torch.Tensor:
    """f_s(x) = (1/(2 pi n)) sum_i sin(2 pi x_i); 1-Lipschitz in l-infinity."""
    n = x.shape[1]
    return torch.sin(2 * math.pi * x).sum(dim=1) / (2 * math.pi * n)


def f_ridge(x: torch.Tensor) -> torch.Tensor:
    """f_r(x) = ||x - (1/3) 1||_inf; 1-Lipschitz in l-infinity."""
    return (x - 1.0 / 3.0).abs().amax(dim=1)


def f_zigzag(x: torch.Tensor) -> torch.Tensor:
    """f_z(x) = dist(sum_i x_i, Z/5); n-Lipschitz in l-infinity."""
    s = x.sum(dim=1) * 5
    return (s - torch.round(s)).abs() / 5


TARGETS = {"f_s": (f_sin, lambda n: 1.0), "f_r": (f_ridge, lambda n: 1.0),
           "f_z": (f_zigzag, lambda n: float(n))}


def target(name: str, n: int):
    """(f, lam): one of the chapter targets and its l-infinity Lipschitz constant in dimension n."""
    validate.choice(name, "target", tuple(TARGETS))
    f, lam = TARGETS[name]
    return f, lam(validate.integer(n, "n", low=1))


def random_lipschitz_target(n: int, rng: np.random.Generator, lam: float = 1.0, terms: int = 6):
    """A random f with l-infinity Lipschitz constant <= lam: a weighted sum of |w.x - b|, max and sin.

    sum_t c_t |w_t . x - b_t| with sum_t c_t ||w_t||_1 = lam is lam-Lipschitz in l-infinity.
    """
    n = validate.integer(n, "n", low=1)
    lam = validate.positive(lam, "lam")
    w = torch.from_numpy(rng.normal(size=(terms, n)))
    b = torch.from_numpy(rng.random(terms)) * w.abs().sum(dim=1)
    c = torch.from_numpy(rng.random(terms))
    c = c * lam / (c * w.abs().sum(dim=1)).sum()
    kinds = torch.from_numpy(rng.integers(0, 2, terms))

    def f(x: torch.Tensor) -> torch.Tensor:
        s = x.double() @ w.T - b
        return (c * torch.where(kinds == 0, s.abs(), torch.sin(s))).sum(dim=1)
    return f


# ----------------------------------------------------------------------------- the hat network


def max_tree(n: int) -> tuple[int, int, int]:
    """ReLU max of n non-negative values by a pairwise tree, max(a, b) = relu(a) + relu(b - a).

    Returns (weights, levels, terms of the result). A value is a sum of ``s`` neuron outputs; a
    neuron relu(sum of values) has one weight per term; an odd value is carried as relu(c).
    """
    n = validate.integer(n, "n", low=1)
    terms, weights, levels = [1] * n, 0, 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            a, b = terms[i], terms[i + 1]
            weights += a + (a + b)           # relu(a), relu(b - a)
            nxt.append(2)
        if len(terms) % 2:
            weights += terms[-1]             # relu(c), c >= 0
            nxt.append(1)
        terms, levels = nxt, levels + 1
    return weights, levels, terms[0]


def hat_unit_params(n: int) -> int:
    """Weights and biases of one hidden hat unit z -> phi(z) (no output weight).

    First layer p_i = relu(z_i), q_i = relu(-z_i) with z_i = x_i/h - c_i: 2n neurons, 4n numbers;
    two max trees (of p and of q); the hat neuron relu(1 - M_p - M_q): s_p + s_q weights + 1 bias.
    """
    w, _, s = max_tree(n)
    return 4 * n + 2 * w + 2 * s + 1


def e1_expert_params(n: int, m: int, d_out: int = 1) -> int:
    """Parameters of one E1 expert: (m+1)^n hat units, d_out output weights each, d_out biases."""
    P = (validate.integer(m, "m", low=1) + 1) ** validate.integer(n, "n", low=1)
    return P * (hat_unit_params(n) + d_out) + d_out


def e1_depth(n: int) -> int:
    """Affine layers of the E1 expert: first layer, the tree levels, the hat neuron, the output."""
    return max_tree(n)[1] + 3


def e1_width(n: int, m: int) -> int:
    """Widest layer of the E1 expert: the first, 2n neurons per hat unit."""
    return 2 * n * (m + 1) ** n


def hat_relu(z: torch.Tensor) -> torch.Tensor:
    """phi(z) (...,) for z (..., n), computed by the ReLU network of ``hat_unit_params``."""
    relu = torch.relu
    vals_p = [relu(z[..., i]) for i in range(z.shape[-1])]
    vals_q = [relu(-z[..., i]) for i in range(z.shape[-1])]
    for vals in (vals_p, vals_q):
        while len(vals) > 1:
            nxt = [relu(a) + relu(b - a) for a, b in zip(vals[0::2], vals[1::2], strict=False)]
            if len(vals) % 2:
                nxt.append(relu(vals[-1]))
            vals[:] = nxt
    return relu(1 - vals_p[0] - vals_q[0])


def hat_formula(z: torch.Tensor) -> torch.Tensor:
    """phi(z) = max(0, 1 - max(0, max_i z_i) + min(0, min_i z_i)) in closed form."""
    top = torch.clamp(z.amax(dim=-1), min=0)
    bottom = torch.clamp(z.amin(dim=-1), max=0)
    return torch.clamp(1 - top + bottom, min=0)


def local_nodes(n: int, m: int) -> torch.Tensor:
    """Integer node coordinates (P, n), row-major over {0..m}^n."""
    g = torch.arange(m + 1, dtype=torch.float64)
    return torch.stack(torch.meshgrid(*[g] * n, indexing="ij"), -1).reshape(-1, n)


def kuhn_weights(u: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Kuhn simplex of local coordinates u (B, n) in [0, m]^n: node indices (B, n+1), weights (B, n+1)."""
    B, n = u.shape
    s = torch.floor(u).clamp(0, m - 1)
    t = (u - s).clamp(0, 1)
    order = torch.argsort(-t, dim=1, stable=True)
    ts = torch.gather(t, 1, order)
    ones = torch.ones(B, 1, dtype=u.dtype)
    zeros = torch.zeros(B, 1, dtype=u.dtype)
    beta = torch.cat([ones, ts], 1) - torch.cat([ts, zeros], 1)
    stride = torch.tensor([(m + 1) ** (n - 1 - i) for i in range(n)], dtype=torch.long)
    base = (s.long() * stride).sum(dim=1, keepdim=True)
    steps = torch.cumsum(stride[order], dim=1)
    return torch.cat([base, base + steps], 1), beta


class FreudenthalHatBank(nn.Module):
    """E1 experts on the cells of an N^n grid: hat interpolation on m^n sub-cubes per cell.

    ``values`` (K, (m+1)^n, d_out): the expert's output weights (f at its nodes). ``form`` picks
    the evaluation: "kuhn" (n+1 hats per input) or "relu" (the ReLU network, all hats).
    """

    def __init__(self, n: int, N: int, m: int, values: torch.Tensor, form: str = "kuhn"):
        super().__init__()
        self.n = validate.integer(n, "n", low=1)
        self.N = validate.integer(N, "cells_per_axis", low=1)
        self.m = validate.integer(m, "m", low=1)
        self.form = validate.choice(form, "form", ("kuhn", "relu"))
        P = (self.m + 1) ** self.n
        values = validate.tensor(values, "values", ndim=3)
        if values.shape[:2] != (self.N ** self.n, P):
            raise ValueError(f"values: expected shape ({self.N ** self.n}, {P}, d_out), got "
                             f"{tuple(values.shape)}")
        self.values = nn.Parameter(values.double().clone(), requires_grad=False)
        self.n_experts, self.d_out = self.N ** self.n, values.shape[2]
        self.params_per_expert = e1_expert_params(self.n, self.m, self.d_out)
        self.depth, self.width = e1_depth(self.n), e1_width(self.n, self.m)
        stride = torch.tensor([self.N ** (self.n - 1 - i) for i in range(self.n)])
        self.register_buffer("stride", stride)
        self.register_buffer("nodes", local_nodes(self.n, self.m))

    def local_coordinates(self, x: torch.Tensor, local_idx: torch.Tensor) -> torch.Tensor:
        coords = (local_idx[:, None] // self.stride) % self.N
        return x.double() * (self.N * self.m) - coords.double() * self.m

    def forward(self, x: torch.Tensor, local_idx: torch.Tensor) -> torch.Tensor:
        u = self.local_coordinates(x, local_idx)
        if self.form == "relu":
            hats = hat_relu(u[:, None, :] - self.nodes[None])
            return torch.einsum("bp,bpd->bd", hats, self.values[local_idx])
        node, beta = kuhn_weights(u, self.m)
        P = self.nodes.shape[0]
        flat = self.values.reshape(-1, self.d_out)[local_idx[:, None] * P + node]
        return (beta[..., None] * flat).sum(dim=1)


# ----------------------------------------------------------------------------- constructions


def ceil_(v: float) -> int:
    """ceil that ignores rounding noise of 1e-12 relative (1/sqrt(0.01) must give 10, not 11)."""
    return max(1, math.ceil(v * (1 - 1e-12)))


def e0_cells(lam: float, eps: float) -> int:
    """Cells per axis of E0: N = ceil(lam / (2 eps)), so lam delta / 2 <= eps."""
    return ceil_(validate.positive(lam, "lam") / (2 * validate.positive(eps, "eps")))


def e1_grid(lam: float, eps: float, n: int) -> tuple[int, int]:
    """(N, m) of E1: m = ceil(eps^(-1/n)), N = ceil(lam / eps^(1-1/n)), so lam / (N m) <= eps."""
    lam, eps = validate.positive(lam, "lam"), validate.positive(eps, "eps")
    n = validate.integer(n, "n", low=1)
    return ceil_(lam / eps ** (1 - 1 / n)), ceil_(eps ** (-1 / n))


def _router(n: int, N: int, router: str):
    validate.choice(router, "router", ("kd", "flat"))
    if router == "kd":
        return KDTreeRouter(n, N)
    return GridRouter(n, N)


def _targets(f, d_out: int):
    fs = list(f) if isinstance(f, (list, tuple)) else [f]
    if len(fs) != d_out:
        raise ValueError(f"f: expected {d_out} target functions, got {len(fs)}")
    return fs


def build_e0(f, n: int, N: int, router: str = "kd") -> MoMLP:
    """E0 MoMLP: N^n constant experts f(c_k); ``f`` maps (B, n) -> (B,) (or a list, one per output)."""
    n, N = validate.integer(n, "n", low=1), validate.integer(N, "cells_per_axis", low=1)
    c = cell_centres(n, N)
    fs = f if isinstance(f, (list, tuple)) else [f]
    values = torch.stack([g(c).double() for g in fs], dim=1)
    return MoMLP(_router(n, N, router), ConstantBank(values))


def e1_values(f, n: int, N: int, m: int) -> torch.Tensor:
    """f at the nodes of every cell: (N^n, (m+1)^n), node coordinates (cell m + j)/(N m) exactly."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(N)] * n, indexing="ij"), -1).reshape(-1, n)
    nodes = local_nodes(n, m).long()
    pts = ((coords[:, None, :] * m + nodes[None]).double() / (N * m)).reshape(-1, n)
    return f(pts).double().reshape(N ** n, -1)


def e1_bank(f, n: int, N: int, m: int, form: str = "kuhn") -> FreudenthalHatBank:
    n, N = validate.integer(n, "n", low=1), validate.integer(N, "cells_per_axis", low=1)
    m = validate.integer(m, "m", low=1)
    fs = f if isinstance(f, (list, tuple)) else [f]
    values = torch.stack([e1_values(g, n, N, m) for g in fs], dim=2)
    return FreudenthalHatBank(n, N, m, values, form=form)


def build_e1(f, n: int, N: int, m: int, router: str = "kd", form: str = "kuhn") -> MoMLP:
    """E1 MoMLP on N^n cells with m^n sub-cubes each (a list ``f`` gives shared hat units)."""
    return MoMLP(_router(n, N, router), e1_bank(f, n, N, m, form))


# ----------------------------------------------------------------------------- measuring


def _evaluate(model: MoMLP, x: torch.Tensor, chunk: int = 1 << 17) -> torch.Tensor:
    return torch.cat([model(x[s:s + chunk]) for s in range(0, x.shape[0], chunk)])


def sup_error(model: MoMLP, f, n: int, M: int, n_random: int, rng: np.random.Generator,
              max_dense: int = 2_000_000, n_cells: int = 200, cells_per_axis: int | None = None):
    """max |f - model| over the grid {i/M}^n (if it has <= max_dense points) or, otherwise, over the
    full i/M sub-grid of ``n_cells`` random cells of an N^n grid, plus ``n_random`` uniform points.

    Choose M a multiple of every cell and sub-cell count so that all boundaries are on the grid.
    Returns (sup error per output (d_out,), number of points).
    """
    n, M = validate.integer(n, "n", low=1), validate.integer(M, "M", low=1)
    fs = f if isinstance(f, (list, tuple)) else [f]
    if (M + 1) ** n <= max_dense:
        g = torch.arange(M + 1, dtype=torch.float64) / M
        pts = [torch.stack(torch.meshgrid(*[g] * n, indexing="ij"), -1).reshape(-1, n)]
    else:
        N = validate.integer(cells_per_axis, "cells_per_axis", low=1)
        if M % N:
            raise ValueError(f"M: expected a multiple of cells_per_axis {N}, got {M}")
        cells = torch.from_numpy(rng.integers(0, N, size=(n_cells, n)))
        step = torch.arange(M // N + 1)
        off = torch.stack(torch.meshgrid(*[step] * n, indexing="ij"), -1).reshape(-1, n)
        pts = [((cells[:, None, :] * (M // N) + off[None]).double() / M).reshape(-1, n)]
    pts.append(torch.from_numpy(rng.random((n_random, n))))
    x = unit_cube_points(torch.cat(pts), n)
    y = _evaluate(model, x)
    truth = torch.stack([g(x).double() for g in fs], dim=1)
    return (y - truth).abs().amax(dim=0), int(x.shape[0])


def hat_checks(n: int, m: int, n_points: int, rng: np.random.Generator) -> dict:
    """On random points of [0, m]^n: max |sum_v phi(u - v) - 1| (partition of unity), the error of
    reproducing a random affine function, max |relu network - closed form| and |relu - Kuhn|."""
    n, m = validate.integer(n, "n", low=1), validate.integer(m, "m", low=1)
    u = torch.from_numpy(rng.random((validate.integer(n_points, "n_points", low=1), n)) * m)
    nodes = local_nodes(n, m)
    z = u[:, None, :] - nodes[None]
    hats = hat_relu(z)
    a, b = torch.from_numpy(rng.normal(size=n)), float(rng.normal())
    affine = (hats * (nodes @ a + b)[None]).sum(dim=1)
    idx, beta = kuhn_weights(u, m)
    values = torch.from_numpy(rng.normal(size=nodes.shape[0]))
    return {"unity": float((hats.sum(dim=1) - 1).abs().max()),
            "affine": float((affine - (u @ a + b)).abs().max()),
            "relu_vs_formula": float((hats - hat_formula(z)).abs().max()),
            "relu_vs_kuhn": float(((hats * values).sum(dim=1)
                                   - (beta * values[idx]).sum(dim=1)).abs().max())}

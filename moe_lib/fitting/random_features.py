"""One-hidden-layer ReLU networks fitted as random features + least squares, float64.

f(x) = sum_j a_j ReLU(<w_j, x> + b_j) + a_0, with the inner weights drawn at random and frozen:
w_j uniform on the unit sphere S^{d_in - 1}, b_j ~ U[-s, s] (default s = sqrt(d_in), the radius of
the cube [-1, 1]^d_in, so that every hyperplane <w, x> + b = 0 can cut the cube; for data of
radius R pass ``bias_scale=R``; ``bias_scale="data"`` puts each hyperplane through a training
point instead). Only the outer weights (a_0, a) are fitted, by linear least
squares on samples. The result is a genuine width-m ReLU network, so its sup error is an *upper
bound* on the best width-m error E^FFN_{2,m}(f); it is not that best error (the inner weights are
not optimised, and least squares minimises the mean square, not the sup).

- ``sample_relu_features(d_in, width, seed, bias_scale)`` -> (W, b);
- ``fit_random_features(x, y, width, ...)`` -> ``RandomFeatureNet`` (``predict``, ``to_mlp``);
  ``fit_random_features_select`` picks the ridge from a list by sup error on held-out points;
- ``least_squares(phi, y, ridge)``: min-norm lstsq (ridge = 0) or normal equations with a tiny
  relative ridge (ridge > 0, the default);
- ``sup_error``, ``width_sweep``, ``width_sweep_select``, ``apply_in_chunks``;
- ``additive_interpolant``: an explicit shallow network for sums of univariate functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import validate
from ..models.batching import CHUNK, apply_in_chunks
from ..models.experts import MLP, relu_mlp_from_weights
from ..seed import generator
from ..validate import DTYPE

#: Default relative ridge: lambda = DEFAULT_RIDGE * mean(diag(Phi^T Phi)). Random ReLU features
#: are nearly collinear (a feature whose hyperplane misses the data is affine on it), so Phi^T Phi
#: is singular to working precision; the ridge shrinks only directions with squared singular
#: value below lambda. Its bias is ~1e-5 relative on the rank-deficient example of the tests,
#: below the approximation errors the chapters measure; pass ridge=0 for exact min-norm lstsq.
DEFAULT_RIDGE = 1e-10


def sample_relu_features(d_in: int, width: int, seed: int | torch.Generator = 0,
                         bias_scale: float | str | None = None,
                         anchors=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner weights W (width, d_in), rows uniform on S^{d_in-1}, and biases b (width,).

    ``bias_scale`` s > 0 (default sqrt(d_in)): b ~ U[-s, s]. ``bias_scale="data"``: each
    hyperplane passes through a point drawn from ``anchors`` (N, d_in), b_j = -<w_j, x_{i_j}>,
    so every feature has its kink on the data, whatever the ambient dimension (data-anchored
    features). Drawn from one generator in a fixed order, so a seed fixes the result.
    """
    d_in = validate.integer(d_in, "d_in", low=1)
    width = validate.integer(width, "width", low=1)
    gen = generator(seed)
    w = torch.randn(width, d_in, generator=gen, dtype=DTYPE)
    w = w / torch.linalg.vector_norm(w, dim=1, keepdim=True)
    if isinstance(bias_scale, str):
        validate.choice(bias_scale, "bias_scale", ("data",))
        if anchors is None:
            raise ValueError("anchors: expected the data points for bias_scale='data', got None")
        anchors = validate.tensor(anchors, "anchors", ndim=2, last=d_in).to(DTYPE)
        idx = torch.randint(anchors.shape[0], (width,), generator=gen)
        return w, -(w * anchors[idx]).sum(dim=1)
    s = math.sqrt(d_in) if bias_scale is None else validate.positive(bias_scale, "bias_scale")
    b = (2.0 * torch.rand(width, generator=gen, dtype=DTYPE) - 1.0) * s
    return w, b


def relu_features(x, W, b) -> torch.Tensor:
    """ReLU(x W^T + b), (N, width)."""
    W = validate.tensor(W, "W", ndim=2).to(DTYPE)
    x = validate.tensor(x, "x", ndim=2, last=W.shape[1]).to(DTYPE)
    b = validate.tensor(b, "b", ndim=1, last=W.shape[0]).to(DTYPE)
    return _features(x, W, b)


def _features(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ReLU(x W^T + b) without input checks (callers have validated)."""
    return torch.relu(x @ W.T + b)


def least_squares(phi, y, ridge: float = DEFAULT_RIDGE) -> torch.Tensor:
    """Coefficients c minimising ||phi c - y||^2 (+ lambda ||c||^2), phi (N, p), y (N, q) -> (p, q).

    ridge = 0: minimum-norm least squares by SVD (LAPACK gelsd), exact but O(N p^2) memory-heavy.
    ridge > 0: normal equations (phi^T phi + lambda I) c = phi^T y with the *relative* ridge
    lambda = ridge * mean(diag(phi^T phi)), solved by Cholesky; fast, and the tiny lambda only
    removes directions the data cannot determine.
    """
    phi = validate.tensor(phi, "phi", ndim=2).to(DTYPE)
    y = validate.tensor(y, "y", ndim=2).to(DTYPE)
    if y.shape[0] != phi.shape[0]:
        raise ValueError(f"y: expected {phi.shape[0]} rows (one per row of phi), got {y.shape[0]}")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
        raise ValueError(f"ridge: expected a number >= 0, got {ridge!r}")
    if ridge == 0:
        return torch.linalg.lstsq(phi, y, driver="gelsd").solution
    return _ridge_solve(phi.T @ phi, phi.T @ y, float(ridge))


def _ridge_solve(gram: torch.Tensor, rhs: torch.Tensor, ridge: float) -> torch.Tensor:
    """(gram + ridge * mean(diag gram) I)^{-1} rhs."""
    lam = ridge * float(torch.diagonal(gram).mean().clamp_min(1e-300))
    return _solve_spd(gram + lam * torch.eye(gram.shape[0], dtype=DTYPE), rhs)


def _normal_equations(x: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
                      b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """phi^T phi and phi^T y for phi = [ReLU(x W^T + b) | 1], accumulated over row blocks."""
    p = W.shape[0] + 1
    gram = torch.zeros(p, p, dtype=DTYPE)
    rhs = torch.zeros(p, y.shape[1], dtype=DTYPE)
    for s in range(0, x.shape[0], CHUNK):
        phi = _design(x[s:s + CHUNK], W, b)
        gram += phi.T @ phi
        rhs += phi.T @ y[s:s + CHUNK]
    return gram, rhs


@dataclass
class RandomFeatureNet:
    """A fitted one-hidden-layer ReLU network f(x) = ReLU(x W^T + b) coef + intercept.

    ``predict`` returns (N,) when it was fitted on a 1-D target, else (N, d_out);
    ``to_mlp`` gives the same function as a ``moe_lib.MLP`` (float64), usable as an expert.
    """

    W: torch.Tensor
    b: torch.Tensor
    coef: torch.Tensor
    intercept: torch.Tensor
    scalar_output: bool = True

    @property
    def d_in(self) -> int:
        return self.W.shape[1]

    @property
    def width(self) -> int:
        return self.W.shape[0]

    @property
    def d_out(self) -> int:
        return self.coef.shape[1]

    def features(self, x) -> torch.Tensor:
        return relu_features(x, self.W, self.b)

    def predict(self, x) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.d_in).to(DTYPE)
        out = apply_in_chunks(lambda xc: _features(xc, self.W, self.b) @ self.coef
                              + self.intercept, x)
        return out[:, 0] if self.scalar_output else out

    __call__ = predict

    def to_mlp(self) -> MLP:
        """The network as ``MLP(d_in, d_out, width, depth=2)``, float64; output shape (N, d_out)."""
        return relu_mlp_from_weights([self.W, self.coef.T], [self.b, self.intercept])


def fit_random_features(x, y, width: int, seed: int | torch.Generator = 0,
                        bias_scale: float | str | None = None,
                        ridge: float = DEFAULT_RIDGE) -> RandomFeatureNet:
    """Draw ``width`` random ReLU features and fit the outer layer (and intercept) by least squares.

    x (N, d_in); y (N,) or (N, d_out). See ``sample_relu_features`` for the draw and
    ``least_squares`` for the solver and ``ridge``.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    y = validate.tensor(y, "y").to(DTYPE)
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected shape ({x.shape[0]},) or ({x.shape[0]}, d_out), "
                         f"got {tuple(y.shape)}")
    W, b = sample_relu_features(x.shape[1], width, seed, bias_scale, anchors=x)
    return fit_outer_layer(x, y, W, b, ridge)


def fit_outer_layer(x, y, W, b, ridge: float = DEFAULT_RIDGE) -> RandomFeatureNet:
    """The fitting core: given inner weights W (width, d_in) and biases b, least-squares outer
    layer and intercept on [ReLU(x W^T + b) | 1]; y (N,) or (N, d_out). ridge = 0: min-norm
    lstsq on the design matrix; ridge > 0: normal equations accumulated over row blocks."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    y = validate.tensor(y, "y").to(DTYPE)
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected shape ({x.shape[0]},) or ({x.shape[0]}, d_out), "
                         f"got {tuple(y.shape)}")
    W = validate.tensor(W, "W", ndim=2, last=x.shape[1]).to(DTYPE)
    b = validate.tensor(b, "b", ndim=1, last=W.shape[0]).to(DTYPE)
    scalar = y.ndim == 1
    y2 = y[:, None] if scalar else y
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
        raise ValueError(f"ridge: expected a number >= 0, got {ridge!r}")
    if ridge == 0:
        c = least_squares(_design(x, W, b), y2, 0.0)
    else:
        c = _ridge_solve(*_normal_equations(x, y2, W, b), float(ridge))
    return RandomFeatureNet(W, b, c[:-1].contiguous(), c[-1].contiguous(), scalar)


def fit_random_features_select(x, y, x_val, y_val, width: int, ridges: Sequence[float],
                               seed: int | torch.Generator = 0,
                               bias_scale: float | str | None = None) -> tuple[RandomFeatureNet, float]:
    """``fit_random_features`` at each relative ridge in ``ridges`` (all > 0) on the same
    features; returns the net with the smallest sup error on the validation set and its ridge.

    phi^T phi is formed once; each ridge costs one Cholesky solve. Selecting on held-out points,
    not on the points the error is finally measured on, keeps that error honest.
    """
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    y = validate.tensor(y, "y", ndim=1).to(DTYPE)
    x_val = validate.tensor(x_val, "x_val", ndim=2, last=x.shape[1]).to(DTYPE)
    y_val = validate.tensor(y_val, "y_val", ndim=1).to(DTYPE)
    if y.shape[0] != x.shape[0] or y_val.shape[0] != x_val.shape[0]:
        raise ValueError(f"y, y_val: expected {x.shape[0]} and {x_val.shape[0]} values (one per "
                         f"point), got {y.shape[0]} and {y_val.shape[0]}")
    if len(ridges) == 0 or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0
                               for r in ridges):
        raise ValueError(f"ridges: expected a non-empty list of numbers > 0, got {list(ridges)}")
    W, b = sample_relu_features(x.shape[1], width, seed, bias_scale, anchors=x)
    gram, rhs = _normal_equations(x, y[:, None], W, b)
    coefs = torch.cat([_ridge_solve(gram, rhs, float(r)) for r in ridges], dim=1)  # (m+1, R)
    val_err = apply_in_chunks(lambda xc: _design(xc, W, b) @ coefs, x_val).sub(
        y_val[:, None]).abs().max(dim=0).values
    best = int(torch.argmin(val_err))   # first of equal errors: the smaller ridge listed first
    c = coefs[:, best:best + 1]
    return (RandomFeatureNet(W, b, c[:-1].contiguous(), c[-1].contiguous(), True),
            float(ridges[best]))


def _design(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[ReLU(x W^T + b) | 1]: the features and a constant column for the intercept."""
    return torch.cat([_features(x, W, b), torch.ones(x.shape[0], 1, dtype=DTYPE)], dim=1)


def _solve_spd(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(gram)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, chol)
    return torch.linalg.lstsq(gram, rhs, driver="gelsd").solution


def sup_error(pred, target) -> float:
    """max |pred - target| over all entries (shapes must match after flattening to rows)."""
    pred = validate.tensor(pred, "pred").to(DTYPE)
    target = validate.tensor(target, "target").to(DTYPE)
    if pred.numel() != target.numel() or pred.shape[0] != target.shape[0]:
        raise ValueError(f"pred: expected the shape of target {tuple(target.shape)}, "
                         f"got {tuple(pred.shape)}")
    return float((pred.reshape(target.shape) - target).abs().max())


def width_sweep(x, y, x_test, y_test, widths: Sequence[int], seed: int = 0,
                bias_scale: float | str | None = None, ridge: float = DEFAULT_RIDGE,
                samples_per_feature: int | None = None) -> list[float]:
    """Sup test error of ``fit_random_features`` at each width (features seeded seed + index).

    With ``samples_per_feature`` = k, the fit at width m uses the first min(N, k m) rows of x, y
    ("min(20 m, N) samples", our reading of the paper's fit); otherwise all rows.
    """
    if len(widths) == 0:
        raise ValueError("widths: expected at least one width, got none")
    seed = validate.integer(seed, "seed", low=0)
    if samples_per_feature is not None:
        samples_per_feature = validate.integer(samples_per_feature, "samples_per_feature", low=1)
    errors = []
    for i, m in enumerate(widths):
        n = x.shape[0] if samples_per_feature is None else min(x.shape[0], samples_per_feature * m)
        net = fit_random_features(x[:n], y[:n], m, seed + i, bias_scale, ridge)
        errors.append(sup_error(net.predict(x_test), y_test))
    return errors


def width_sweep_select(x, y, x_val, y_val, x_test, y_test, widths: Sequence[int],
                       ridges: Sequence[float], seed: int = 0, bias_scale: float | str | None = None,
                       samples_per_feature: int | None = None) -> dict:
    """``width_sweep`` with the ridge chosen per width by ``fit_random_features_select`` on the
    validation points; the error is then measured on the separate test points.

    Returns {"widths": list, "errors": sup test errors, "ridges": the chosen ridges}.
    """
    if len(widths) == 0:
        raise ValueError("widths: expected at least one width, got none")
    seed = validate.integer(seed, "seed", low=0)
    if samples_per_feature is not None:
        samples_per_feature = validate.integer(samples_per_feature, "samples_per_feature", low=1)
    errors, chosen = [], []
    for i, m in enumerate(widths):
        n = x.shape[0] if samples_per_feature is None else min(x.shape[0], samples_per_feature * m)
        net, r = fit_random_features_select(x[:n], y[:n], x_val, y_val, m, ridges, seed + i,
                                            bias_scale)
        errors.append(sup_error(net.predict(x_test), y_test))
        chosen.append(r)
    return {"widths": [int(m) for m in widths], "errors": errors, "ridges": chosen}


# ----------------------------------------------------------------------------------------------
# an explicit (not random) shallow network, for comparison


def additive_interpolant(g, d_in: int, knots: int, low: float = -1.0,
                         high: float = 1.0) -> MLP:
    """The one-hidden-layer ReLU network sum_i p(x_i), p the piecewise-linear interpolant of the
    univariate g at ``knots`` + 1 equally spaced nodes t_0 = low < ... < t_k = high.

    On [low, high], p(t) = g(t_0) + s_0 ReLU(t - t_0) + sum_{j=1}^{k-1} (s_j - s_{j-1}) ReLU(t - t_j)
    with s_j the slope on [t_j, t_{j+1}]: ``knots`` neurons per coordinate, width d_in * knots.
    For g with |g''| <= M (a.e.), |p - g| <= M h^2 / 8 with h = (high - low) / knots, so a sum of
    d_in such terms is within d_in M h^2 / 8 of sum_i g(x_i) on the cube [low, high]^d_in.
    ``g`` maps a float64 tensor (k + 1,) to (k + 1,).
    """
    d_in = validate.integer(d_in, "d_in", low=1)
    knots = validate.integer(knots, "knots", low=1)
    if not high > low:
        raise ValueError(f"low, high: expected low < high, got {low}, {high}")
    t = torch.linspace(low, high, knots + 1, dtype=DTYPE)
    v = torch.as_tensor(g(t), dtype=DTYPE)
    slopes = (v[1:] - v[:-1]) / (t[1:] - t[:-1])
    outer = torch.cat([slopes[:1], slopes[1:] - slopes[:-1]])  # (knots,)
    eye = torch.eye(d_in, dtype=DTYPE)
    W1 = eye.repeat_interleave(knots, dim=0)                    # neuron (i, j) reads x_i
    b1 = (-t[:-1]).repeat(d_in)
    W2 = outer.repeat(d_in)[None, :]
    b2 = torch.tensor([d_in * float(v[0])], dtype=DTYPE)
    return relu_mlp_from_weights([W1, W2], [b1, b2])


def gaussian_relu_features(d_in: int, width: int, seed: int | torch.Generator = 0,
                           bias_std: float = 1.0, centre=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ReLU(<w, x - c> + beta): w ~ N(0, I_{d_in}), beta ~ N(0, bias_std^2), returned as
    (W (width, d_in), b (width,)) with b = beta - <w, c> (c = ``centre``, default 0).

    For x = Q y with Q^T Q = I, <w, x> = <Q^T w, y> and Q^T w ~ N(0, I_k) whatever D is: the
    features restricted to the embedded manifold have the same law for every ambient dimension.
    """
    d_in = validate.integer(d_in, "d_in", low=1)
    width = validate.integer(width, "width", low=1)
    bias_std = validate.positive(bias_std, "bias_std")
    gen = generator(seed)
    w = torch.randn(width, d_in, generator=gen, dtype=DTYPE)
    beta = bias_std * torch.randn(width, generator=gen, dtype=DTYPE)
    if centre is not None:
        c = validate.tensor(centre, "centre", ndim=1, last=d_in).to(DTYPE)
        beta = beta - w @ c
    return w, beta


def fit_gaussian_features(x, y, width: int, seed: int | torch.Generator = 0, bias_std: float = 1.0,
                          centre=None, ridge: float = DEFAULT_RIDGE) -> RandomFeatureNet:
    """``fit_outer_layer`` on ``gaussian_relu_features``; y (N,) or (N, d_out)."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    W, b = gaussian_relu_features(x.shape[1], width, seed, bias_std, centre)
    return fit_outer_layer(x, y, W, b, ridge)

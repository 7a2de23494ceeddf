"""Empirical Rademacher complexity: Monte Carlo estimators with seeded sign draws, and closed forms.

R_S(H) = E_sigma sup_{h in H} (1/m) sum_i sigma_i h(x_i), sigma_i i.i.d. uniform on {-1, +1}.

- ``signs``: the seeded sign matrix (draws, m) every estimator takes;
- linear class {x -> <w, x> : ||w||_2 <= B}: the sup is (B/m) ||sum_i sigma_i x_i||_2 exactly,
  ``linear_l2_sups``; closed-form upper bound (B/m) sqrt(sum_i ||x_i||^2) (Jensen),
  ``linear_l2_upper``, and the Khintchine-Kahane lower bound (1/sqrt 2) times it;
- finite classes (a set of N vectors a in R^m): ``finite_class_sups`` and Massart's bound
  max ||a||_2 sqrt(2 ln N) / m, ``massart_bound``;
- ``ramp_linear_sups``: sup over a polar grid of the 2-D disk of (1/m) sum sigma_i phi(y_i <w, x_i>)
  with phi the ramp loss, plus the grid's worst-case error (for the contraction lemma);
- ``mlp_sign_fit``: gradient ascent of (1/m) sum sigma_i tanh(h(x_i)) over small ReLU MLPs h, one
  network per sign draw, batched: a lower estimate of the class's Rademacher complexity.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import validate


def signs(n_draws: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """(n_draws, m) i.i.d. uniform signs in {-1, +1} from ``rng``."""
    n_draws = validate.integer(n_draws, "n_draws", low=1)
    m = validate.integer(m, "m", low=1)
    return 2.0 * rng.integers(0, 2, size=(n_draws, m)) - 1.0


def _sigma(sigma, m: int) -> np.ndarray:
    sigma = np.asarray(sigma, dtype=float)
    if sigma.ndim != 2 or sigma.shape[1] != m or not np.isin(sigma, (-1.0, 1.0)).all():
        raise ValueError(f"sigma: expected a (draws, {m}) array of +-1 signs, got shape {sigma.shape}")
    return sigma


def mean_and_se(values) -> tuple[float, float]:
    """Monte Carlo mean and its standard error s / sqrt(n)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2:
        raise ValueError(f"values: expected at least 2 draws, got {v.size}")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def linear_l2_sups(X, sigma, B: float = 1.0) -> np.ndarray:
    """Per draw, sup_{||w||_2 <= B} (1/m) sum_i sigma_i <w, x_i> = (B/m) ||sum_i sigma_i x_i||_2."""
    X = validate.matrix(X, "X")
    sigma = _sigma(sigma, X.shape[0])
    B = validate.positive(B, "B")
    return B / X.shape[0] * np.linalg.norm(sigma @ X, axis=1)


def linear_l2_mc(X, n_draws: int, rng: np.random.Generator, B: float = 1.0, chunk: int = 250
                 ) -> tuple[float, float]:
    """Monte Carlo R_S of the l2 ball of radius B: (mean, standard error) over ``n_draws`` sign
    draws, drawn ``chunk`` at a time from ``rng`` (memory stays chunk x m)."""
    X = validate.matrix(X, "X")
    n_draws = validate.integer(n_draws, "n_draws", low=2)
    chunk = validate.integer(chunk, "chunk", low=1)
    sups = np.concatenate([linear_l2_sups(X, signs(min(chunk, n_draws - s), X.shape[0], rng), B)
                           for s in range(0, n_draws, chunk)])
    return mean_and_se(sups)


def linear_l2_upper(X, B: float = 1.0) -> float:
    """(B/m) sqrt(sum_i ||x_i||^2) >= R_S, by Jensen: E||sum sigma_i x_i|| <= sqrt(E||.||^2)."""
    X = validate.matrix(X, "X")
    return validate.positive(B, "B") / X.shape[0] * float(np.sqrt((X ** 2).sum()))


def linear_l2_lower(X, B: float = 1.0) -> float:
    """(1/sqrt 2) (B/m) sqrt(sum ||x_i||^2) <= R_S (Khintchine-Kahane with the optimal constant
    1/sqrt 2 of Latala and Oleszkiewicz)."""
    return linear_l2_upper(X, B) / math.sqrt(2.0)


def linear_l2_bound(B: float, R: float, m: int) -> float:
    """B R / sqrt(m) >= (B/m) sqrt(sum ||x_i||^2) when every ||x_i|| <= R."""
    return validate.positive(B, "B") * validate.positive(R, "R") / math.sqrt(validate.integer(m, "m", low=1))


def finite_class_sups(A, sigma) -> np.ndarray:
    """Per draw, max_{a in A} (1/m) <sigma, a> for a finite set A of vectors, rows of (N, m)."""
    A = validate.matrix(A, "A")
    sigma = _sigma(sigma, A.shape[1])
    return (sigma @ A.T).max(axis=1) / A.shape[1]


def massart_bound(A) -> float:
    """Massart's finite-class lemma: R(A) <= max_a ||a||_2 sqrt(2 ln N) / m for N vectors in R^m."""
    A = validate.matrix(A, "A")
    return float(np.linalg.norm(A, axis=1).max() * math.sqrt(2.0 * math.log(A.shape[0])) / A.shape[1])


def ramp(t, gamma: float = 1.0) -> np.ndarray:
    """Ramp loss of margin gamma: 1 for t <= 0, 1 - t / gamma on [0, gamma], 0 above; (1/gamma)-Lipschitz."""
    return np.clip(1.0 - np.asarray(t, dtype=float) / validate.positive(gamma, "gamma"), 0.0, 1.0)


def disk_grid(B: float, n_radii: int, n_angles: int) -> tuple[np.ndarray, float]:
    """A polar grid of the disk ||w|| <= B in R^2, and its covering radius h (every w of the disk is
    within h of a grid point): h <= dr/2 + B dtheta/2 with dr = B/(n_radii-1), dtheta = 2 pi/n_angles."""
    B = validate.positive(B, "B")
    n_radii = validate.integer(n_radii, "n_radii", low=2)
    n_angles = validate.integer(n_angles, "n_angles", low=3)
    r = np.linspace(0.0, B, n_radii)
    th = 2 * np.pi * np.arange(n_angles) / n_angles
    W = (r[:, None, None] * np.stack([np.cos(th), np.sin(th)], axis=-1)[None]).reshape(-1, 2)
    return W, B / (n_radii - 1) / 2 + B * np.pi / n_angles


def ramp_linear_sups(X, y, sigma, B: float, gamma: float, n_radii: int = 40, n_angles: int = 256
                     ) -> tuple[np.ndarray, float]:
    """Per draw, max over a polar grid of the disk of (1/m) sum_i sigma_i ramp(y_i <w, x_i>), in R^2.

    Returns (sups, slack): the true sup over the disk exceeds the grid max by at most
    slack = max_i ||x_i|| h / gamma (the map is (max||x||/gamma)-Lipschitz in w).
    """
    X = validate.matrix(X, "X")
    if X.shape[1] != 2:
        raise ValueError(f"X: expected points in R^2, got dimension {X.shape[1]}")
    y = np.asarray(y, dtype=float)
    if y.shape != (X.shape[0],) or not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError(f"y: expected {X.shape[0]} labels in {{-1, +1}}, got shape {y.shape}")
    sigma = _sigma(sigma, X.shape[0])
    W, h = disk_grid(B, n_radii, n_angles)
    phi = ramp(y[:, None] * (X @ W.T), gamma)                     # (m, grid)
    sups = (sigma @ phi).max(axis=1) / X.shape[0]
    return sups, float(np.linalg.norm(X, axis=1).max() * h / gamma)


def mlp_sign_fit(X, sigma, width: int, steps: int = 200, lr: float = 0.05, seed: int = 0
                 ) -> np.ndarray:
    """Per draw, (1/m) sum_i sigma_i tanh(h(x_i)) after Adam ascent over a 2-layer ReLU MLP h of the
    given width (one independent network per draw, all trained at once). Each value is attained by
    a member of {tanh o h}, so its mean is a lower estimate of that class's Rademacher complexity."""
    X = torch.as_tensor(validate.matrix(X, "X"), dtype=torch.float32)
    sigma = torch.as_tensor(_sigma(sigma, X.shape[0]), dtype=torch.float32)
    width = validate.integer(width, "width", low=1)
    steps = validate.integer(steps, "steps", low=1)
    lr = validate.positive(lr, "lr")
    g = torch.Generator().manual_seed(validate.integer(seed, "seed", low=0))
    n, d = sigma.shape[0], X.shape[1]
    W1 = (torch.randn(n, d, width, generator=g) / math.sqrt(d)).requires_grad_()
    b1 = torch.zeros(n, 1, width, requires_grad=True)
    W2 = (torch.randn(n, width, 1, generator=g) / math.sqrt(width)).requires_grad_()
    b2 = torch.zeros(n, 1, 1, requires_grad=True)
    opt = torch.optim.Adam([W1, b1, W2, b2], lr=lr)

    def value() -> torch.Tensor:
        h = torch.relu(X[None] @ W1 + b1) @ W2 + b2                # (n, m, 1)
        return (sigma * torch.tanh(h[..., 0])).mean(dim=1)         # (n,)

    for _ in range(steps):
        opt.zero_grad()
        (-value().sum()).backward()
        opt.step()
    with torch.no_grad():
        return value().numpy().astype(float)


def threshold_sup_deviation(m: int, n_resamples: int, thresholds, eta: float,
                            rng: np.random.Generator) -> np.ndarray:
    """Z = max_t (L_D(h_t) - L_S(h_t)) for the thresholds h_t(x) = 1[x > t] under the 0-1 loss, on
    ``n_resamples`` fresh samples of size m: x ~ U[0,1], y = 1[x > 1/2] flipped with probability eta.

    L_D(h_t) = eta + (1 - 2 eta) |t - 1/2| exactly, so Z is computed without estimation error.
    Each Z is a function of m independent points with differences bounded by 1/m (McDiarmid).
    """
    m = validate.integer(m, "m", low=1)
    n_resamples = validate.integer(n_resamples, "n_resamples", low=1)
    t = np.asarray(thresholds, dtype=float)
    if t.ndim != 1 or t.size == 0 or ((t < 0) | (t > 1)).any():
        raise ValueError(f"thresholds: expected a non-empty 1-D array in [0, 1], got {t!r}")
    eta = float(eta)
    if not 0 <= eta <= 0.5:
        raise ValueError(f"eta: expected a noise rate in [0, 1/2], got {eta}")
    x = rng.random((n_resamples, m))
    y = (x > 0.5) ^ (rng.random((n_resamples, m)) < eta)
    emp = ((x[:, :, None] > t) != y[:, :, None]).mean(axis=1)       # (n_resamples, n_thresholds)
    return (eta + (1 - 2 * eta) * np.abs(t - 0.5) - emp).max(axis=1)

"""Spectral complexity of ReLU networks and the bounds built on it (Bartlett, Foster & Telgarsky
2017), in the form we use (our recollection of arXiv:1706.08498; the P3 paper's form is unknown).

For a network x -> A_L s(A_{L-1} ... s(A_1 x)) with rho-Lipschitz activations and reference
matrices M_i (0 here),

    R_A = (prod_i rho_i ||A_i||_sigma) * (sum_i (||A_i^T - M_i^T||_{2,1} / ||A_i||_sigma)^(2/3))^(3/2),

where ||B||_{2,1} is the sum of the 2-norms of the columns of B (so ||A^T||_{2,1} sums the row
norms of A). Biases are absorbed by the usual homogeneous trick (``augment_bias``): the layer
(W, b) acts on (h, 1) as [[W, b], [0, 1]], and relu(1) = 1 keeps the constant coordinate.

The covering bound ln N(F|_S, eps, ||.||_2) <= ||X||_2^2 ln(2 W^2) R_A^2 / eps^2, with
||X||_2 = sqrt(sum_i ||x_i||^2) and W the largest width, gives by Dudley's entropy integral
(truncated at alpha = 1/sqrt(m), class range [0, 1] after a (1/gamma)-Lipschitz ramp loss)

    R_hat_S(ramp_gamma o F) <= 4/m + 12 ||X||_2 R_A sqrt(ln(2 W^2)) ln(m) / (gamma m)

(``ramp_rademacher_bound``; our derivation of the constants), and ``ramp_gap_bound`` turns it
into a bound on the ramp-loss gap. ``margin_bound`` is BFT's Theorem 1.1 as we recall it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import validate


def _matrix(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected a finite, non-empty 2-D matrix, got shape {a.shape}")
    return a


def spectral_norm(a) -> float:
    """Largest singular value ||A||_sigma."""
    return float(np.linalg.norm(_matrix(a, "A"), 2))


def norm_21(a) -> float:
    """||A||_{2,1}: the sum over columns of A of their Euclidean norms."""
    return float(np.linalg.norm(_matrix(a, "A"), axis=0).sum())


def augment_bias(weight, bias, last: bool = False) -> np.ndarray:
    """The homogeneous matrix [[W, b], [0, 1]] (or [W, b] for the last layer, ``last=True``)."""
    w = _matrix(weight, "weight")
    b = np.asarray(bias, dtype=np.float64).reshape(-1)
    if b.shape[0] != w.shape[0]:
        raise ValueError(f"bias: expected {w.shape[0]} entries (rows of weight), got {b.shape[0]}")
    top = np.concatenate([w, b[:, None]], axis=1)
    if last:
        return top
    bottom = np.zeros((1, w.shape[1] + 1))
    bottom[0, -1] = 1.0
    return np.concatenate([top, bottom], axis=0)


def spectral_complexity(matrices: Sequence, rho: float | Sequence[float] = 1.0,
                        refs: Sequence | None = None) -> float:
    """R_A of the layer matrices A_1, ..., A_L (each out x in), Lipschitz constants rho_i of the
    activations after each layer (1 for ReLU; one number for all), reference matrices M_i
    (default 0)."""
    mats = [_matrix(a, f"matrices[{i}]") for i, a in enumerate(matrices)]
    if not mats:
        raise ValueError("matrices: expected at least one layer matrix, got none")
    for i in range(1, len(mats)):
        if mats[i].shape[1] != mats[i - 1].shape[0]:
            raise ValueError(f"matrices[{i}]: expected {mats[i - 1].shape[0]} columns (the rows "
                             f"of the previous layer), got shape {mats[i].shape}")
    rhos = [float(rho)] * len(mats) if np.isscalar(rho) else [float(r) for r in rho]
    if len(rhos) != len(mats) or any(not (math.isfinite(r) and r > 0) for r in rhos):
        raise ValueError(f"rho: expected {len(mats)} positive Lipschitz constants, got {rho!r}")
    refs = [np.zeros_like(a) for a in mats] if refs is None else \
        [_matrix(r, f"refs[{i}]") for i, r in enumerate(refs)]
    if len(refs) != len(mats) or any(r.shape != a.shape for r, a in zip(refs, mats, strict=False)):
        raise ValueError("refs: expected one reference matrix of each layer's shape")
    sig = [spectral_norm(a) for a in mats]
    if min(sig) == 0:
        raise ValueError("matrices: expected nonzero layer matrices (a zero layer has R_A = 0 "
                         "and the ratio terms are undefined)")
    prod = float(np.prod([r * s for r, s in zip(rhos, sig, strict=True)]))
    ratio = sum((norm_21((a - m).T) / s) ** (2 / 3) for a, m, s in zip(mats, refs, sig, strict=True))
    return prod * ratio ** 1.5


def spectral_product(matrices: Sequence, rho: float = 1.0) -> float:
    """prod_i rho ||A_i||_sigma (the Lipschitz constant of the network, up to the activations)."""
    return float(np.prod([float(rho) * spectral_norm(a) for a in matrices]))


def data_norm(x) -> float:
    """||X||_2 = sqrt(sum_i ||x_i||_2^2) of the data rows x (m, d)."""
    return float(np.sqrt((_matrix(x, "x") ** 2).sum()))


def ramp_rademacher_bound(r_a: float, x_norm: float, width: int, m: int, gamma: float) -> float:
    """Dudley bound 4/m + 12 ||X||_2 R_A sqrt(ln(2 W^2)) ln(m) / (gamma m) on the empirical
    Rademacher complexity of the gamma-ramp loss class of networks with spectral complexity R_A."""
    m = validate.integer(m, "m", low=2)
    width = validate.integer(width, "width", low=1)
    gamma = validate.positive(gamma, "gamma")
    if not (math.isfinite(r_a) and r_a >= 0 and math.isfinite(x_norm) and x_norm >= 0):
        raise ValueError(f"r_a, x_norm: expected finite numbers >= 0, got {r_a} and {x_norm}")
    return 4 / m + 12 * x_norm * r_a * math.sqrt(math.log(2 * width ** 2)) * math.log(m) / (gamma * m)


def ramp_gap_bound(rademacher: float, m: int, delta: float = 0.05) -> float:
    """The standard Rademacher bound (SSBD Thm 26.5) on the ramp-loss gap L_D - L_S of a class
    with values in [0, 1] and empirical Rademacher complexity ``rademacher``, with probability
    1 - delta: 2 rademacher + 4 sqrt(2 ln(4/delta) / m)."""
    m = validate.integer(m, "m", low=1)
    delta = validate.positive(delta, "delta")
    if delta >= 1:
        raise ValueError(f"delta: expected a confidence level in (0, 1), got {delta}")
    if not (math.isfinite(rademacher) and rademacher >= 0):
        raise ValueError(f"rademacher: expected a finite number >= 0, got {rademacher}")
    return 2 * rademacher + 4 * math.sqrt(2 * math.log(4 / delta) / m)


def margin_bound(train_ramp: float, r_a: float, x_norm: float, width: int, m: int, gamma: float,
                 delta: float = 0.05) -> float:
    """BFT Thm 1.1 (as we recall it): test misclassification <= train ramp loss + 8/m
    + 72 ||X||_2 ln(2W) ln(m) R_A / (gamma m) + 3 sqrt(ln(1/delta) / (2m))."""
    m = validate.integer(m, "m", low=2)
    width = validate.integer(width, "width", low=1)
    gamma = validate.positive(gamma, "gamma")
    delta = validate.positive(delta, "delta")
    if delta >= 1:
        raise ValueError(f"delta: expected a confidence level in (0, 1), got {delta}")
    return (float(train_ramp) + 8 / m + 72 * x_norm * math.log(2 * width) * math.log(m) * r_a
            / (gamma * m) + 3 * math.sqrt(math.log(1 / delta) / (2 * m)))


def stacked_expert_matrices(stack, model: int, expert: int, layer: int = 0) -> list[np.ndarray]:
    """The bias-augmented layer matrices of one expert of a ``StackedMoE`` (unpadded)."""
    s = validate.integer(model, "model", low=0, high=stack.n_models - 1)
    e = validate.integer(expert, "expert", low=0, high=stack.n_experts - 1)
    depth = stack.depth
    d_in = stack.in_dims[s] if layer == 0 else stack.dims[layer]
    sizes = [d_in] + [stack.widths[s]] * (depth - 1) + [stack.dims[layer + 1]]
    mats = []
    for j in range(depth):
        w = stack.weights[layer * depth + j][s, e, :sizes[j + 1], :sizes[j]].detach().numpy()
        b = stack.biases[layer * depth + j][s, e, :sizes[j + 1]].detach().numpy()
        mats.append(augment_bias(w, b, last=j == depth - 1))
    return mats

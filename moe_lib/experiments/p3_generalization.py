"""Drivers of the Part III chapters on the sparse-MoE generalization bound (P3-T1, L2, L3, C4, FU).

Every training run goes through ONE sweep function, Part II's ``train_sweep`` (with its
``sweep_axis`` / ``by_value`` helpers), which trains each sweep value as one ``StackedMoE`` with
``fit``. This module is the only place in Part III that imports those (they are being moved to
``moe_lib.fitting.sweeps`` / ``fitting.train`` / ``models.stacked``).

Model axis. A sweep value is an architecture (T, k, expert width); the models of one stack are
(m, seed) pairs, each trained on its OWN fixed training set of size m drawn from seed (the same
set for every architecture: common random numbers), via train_sweep's per-seed samplers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .. import validate
from ..capacity import bounds, rademacher, spectral
from ..fitting.sweeps import by_value, sweep_axis, train_sweep
from ..fitting.train import dataset_sampler
from ..models.stacked import stacked_class_members

__all__ = ["by_value", "sweep_axis", "train_sweep", "regions_teacher", "regions_data",
           "classification_sweep", "gap_bounds", "spectral_bounds", "linear_mc_ratios",
           "relu_router_patterns", "skill_teacher",
           "skill_data", "skill_sweep", "median_interval", "optimal_k_analytic", "spearman",
           "sign_test_threshold"]


# --- the mixture-of-regions binary task (P3-T1, L3, C4) -----------------------------------------


def regions_teacher(n_regions: int, seed: int) -> dict:
    """A piecewise-linear teacher on [-1, 1]^2: Voronoi cells of ``n_regions`` random centres, and
    in cell r the label sign(<u_r, x - c_r>) with a random unit normal u_r."""
    n_regions = validate.integer(n_regions, "n_regions", low=1)
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    centres = rng.uniform(-0.7, 0.7, size=(n_regions, 2))
    angle = rng.uniform(0, 2 * math.pi, size=n_regions)
    return {"centres": centres, "normals": np.stack([np.cos(angle), np.sin(angle)], axis=1)}


def regions_labels(x: np.ndarray, teacher: dict) -> np.ndarray:
    """Noiseless labels (+1/-1) of the teacher on the rows of x (N, 2)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x: expected shape (N, 2), got {x.shape}")
    c, u = teacher["centres"], teacher["normals"]
    r = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    s = ((x - c[r]) * u[r]).sum(1)
    return np.where(s >= 0, 1.0, -1.0)


def regions_data(n: int, teacher: dict, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n points uniform on [-1, 1]^2 with teacher labels flipped with probability ``noise``:
    x (n, 2), y (n, 1) in {-1, +1}, float64 tensors."""
    n = validate.integer(n, "n", low=1)
    if not 0 <= noise < 0.5:
        raise ValueError(f"noise: expected a flip probability in [0, 0.5), got {noise}")
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    x = rng.uniform(-1, 1, size=(n, 2))
    y = regions_labels(x, teacher) * np.where(rng.random(n) < noise, -1.0, 1.0)
    return torch.from_numpy(x), torch.from_numpy(y[:, None])


def _losses(stack, xs: list[torch.Tensor], ys: list[torch.Tensor], gamma: float,
            selected: bool = True):
    """Per model s on its own (x_s, y_s): mean ramp loss, 0-1 error and (if ``selected``) the
    selected experts (m_s, k).

    One (chunked) forward pass of the stack per distinct set size: the models whose sets have n
    rows are evaluated together on an (S, n, d) input holding each one's own rows (a model's output
    on a row depends only on its own slice and that row, so this equals S passes on x_s broadcast
    to every model)."""
    n_models, dtype = stack.n_models, stack.gate_w[0].dtype
    if len(xs) != n_models or len(ys) != n_models:
        raise ValueError(f"xs, ys: expected one set per model ({n_models}), "
                         f"got {len(xs)} and {len(ys)}")
    ramp, err, sel = np.zeros(n_models), np.zeros(n_models), [None] * n_models
    groups: dict[int, list[int]] = {}
    for s, x in enumerate(xs):
        groups.setdefault(x.shape[0], []).append(s)
    with torch.no_grad():
        for members in groups.values():
            if all(xs[s] is xs[members[0]] for s in members) and len(members) == n_models:
                xin = xs[members[0]].to(dtype)[None].expand(n_models, -1, -1)
            else:
                own = set(members)
                xin = torch.stack([xs[s] if s in own else xs[members[0]]
                                   for s in range(n_models)]).to(dtype)
            f = stack.predict(xin, chunk=2048)[0][:, :, 0].numpy()
            idx = stack.select(stack.scores(0, xin))[0].numpy() if selected else None
            for s in members:
                margin = f[s] * ys[s][:, 0].numpy()
                ramp[s] = float(rademacher.ramp(margin, gamma).mean())
                err[s] = float((margin <= 0).mean())
                if selected:
                    sel[s] = idx[s]
    return ramp, err, sel


def classification_sweep(configs: Sequence[tuple[int, int, int]], ms: Sequence[int],
                         seeds: Sequence[int], steps: int, lr: float, batch_size: int,
                         teacher: dict, noise: float, n_test: int, gamma: float,
                         data_seed: int = 0) -> dict:
    """Train sparse MoEs on the regions task: one stack per (T, k, width) in ``configs`` whose
    models are the (m, seed) pairs (m-major), each on its own training set; linear experts for
    width 0, else 2-layer ReLU experts of that width. Linear router with a bias (d_N <= 3T);
    T = 1 is a dense network.

    Returns per-config arrays of shape (len(ms), len(seeds)): train/test ramp loss and 0-1 error,
    their gaps, the largest expert norm B (linear) and the largest expert spectral complexity
    R_A (bias-augmented), plus the train sets, the selected experts and the stacks."""
    configs = [(validate.integer(T, "T", low=1), validate.integer(k, "k", low=1, high=T),
                validate.integer(w, "width", low=0)) for T, k, w in configs]
    m_axis, s_axis = sweep_axis(ms, seeds)
    n_models = len(m_axis)
    train = [regions_data(m, teacher, noise, data_seed + 7919 * sd + m)
             for m, sd in zip(m_axis, s_axis, strict=True)]
    x_test, y_test = regions_data(n_test, teacher, noise, data_seed + 104729)
    model_ids = list(range(n_models))

    def build(cfg, ids):
        T, k, w = cfg
        return stacked_class_members([2, 1], T, max(w, 1), [s + 100 * T + k for s in ids],
                                     depth=1 if w == 0 else 2, k=k, gate_bias=True)

    samplers = [dataset_sampler(x, y) for x, y in train]
    # train_sweep's test MSE is not used (the test losses are the ramp and 0-1 losses below, on
    # all n_test points): it is given one test point instead of a second pass over the test set
    out = train_sweep(build, configs, model_ids, samplers, (x_test[:1], y_test[:1]), steps, lr=lr,
                      batch_size=batch_size, desc="P3 gap sweep")
    res: dict = {"configs": configs, "ms": list(ms), "seeds": list(seeds), "train": train,
                 "stacks": out["stacks"], "selected": []}
    keys = ("train_ramp", "test_ramp", "train_err", "test_err", "gap_ramp", "gap_err", "B", "R_A")
    for key in keys:
        res[key] = []
    for stack in out["stacks"]:
        tr_ramp, tr_err, sel = _losses(stack, [x for x, _ in train], [y for _, y in train], gamma)
        te_ramp, te_err, _ = _losses(stack, [x_test] * n_models, [y_test] * n_models, gamma,
                                      selected=False)
        B, R_A = [], []
        for s in range(n_models):
            mats = [spectral.stacked_expert_matrices(stack, s, e) for e in range(stack.n_experts)]
            B.append(max(float(np.linalg.norm(m[0])) for m in mats) if stack.depth == 1
                     else math.nan)
            R_A.append(max(spectral.spectral_complexity(m) for m in mats))
        vals = (tr_ramp, te_ramp, tr_err, te_err, te_ramp - tr_ramp, te_err - tr_err, B, R_A)
        for key, v in zip(keys, vals, strict=True):
            res[key].append(by_value(np.asarray(v), len(ms)))
        res["selected"].append(sel)
    for key in keys:
        res[key] = np.array(res[key])           # (n_configs, n_m, n_seeds)
    return res


def gap_bounds(res: dict, gamma: float, delta: float, radius: float | None = None,
               d_N: np.ndarray | None = None) -> dict:
    """The P3-T1 bound for every trained model of ``classification_sweep``.

    Expert term: 4 C R_m(H) with C = 1/gamma and, for linear experts, R_m(H) <= B radius / sqrt(m)
    (radius = max ||(x, 1)||, sqrt(3) on [-1, 1]^2); for MLP experts, 4 R_hat(ramp o H) from the
    spectral (Dudley) bound with the expert's R_A. Routing term with d_N = 3T (or ``d_N``, one per
    config). Also the conservative expert cost sum_j (m_j/m) R_hat_{S_j} (linear experts)."""
    gamma = validate.positive(gamma, "gamma")
    radius = math.sqrt(3.0) if radius is None else float(radius)
    n_c, n_m, n_s = res["gap_ramp"].shape
    out = {k: np.zeros((n_c, n_m, n_s)) for k in ("expert", "routing", "routing_exact", "bound",
                                                  "bound_exact", "expert_conservative")}
    for c, (T, k, width) in enumerate(res["configs"]):
        dn = 3 * T if d_N is None else int(d_N[c])
        for i, m in enumerate(res["ms"]):
            for j in range(n_s):
                s = i * n_s + j
                xt = _with_ones(res["train"][s][0])
                if width == 0:
                    B = res["B"][c, i, j]
                    ex = 4 / gamma * rademacher.linear_l2_bound(B, radius, m)
                    cons = 4 / gamma * bounds.conservative_expert_sum(xt, res["selected"][c][s], B, T)
                else:
                    ex = 4 * spectral.ramp_rademacher_bound(
                        float(res["R_A"][c, i, j]), spectral.data_norm(xt), width + 1, m, gamma)
                    cons = math.nan
                out["expert"][c, i, j] = ex
                out["expert_conservative"][c, i, j] = cons
                out["routing"][c, i, j] = float(bounds.routing_term(m, T, k, dn, delta))
                out["routing_exact"][c, i, j] = float(bounds.routing_term(m, T, k, dn, delta, True))
    out["bound"] = out["expert"] + out["routing"]
    out["bound_exact"] = out["expert"] + out["routing_exact"]
    return out


def _with_ones(x: torch.Tensor) -> np.ndarray:
    """The bias-augmented data rows (x, 1) of a training set x (m, d)."""
    x = x.numpy()
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)


def spectral_bounds(res: dict, gamma: float, delta: float) -> dict:
    """P3-L3's quantities for every trained model of a ``classification_sweep`` of dense networks
    (every config T = 1: the expert alone), each of shape (n_configs, n_m, n_seeds):

    - "R_A": the spectral complexity of the network (bias-augmented, M_i = 0, rho_i = 1);
    - "prod": prod_i ||A_i||_sigma, and "lower": L^(3/2) prod, which R_A cannot go below;
    - "rad": the chained (Dudley) bound on R_hat_S(ramp_gamma o F) on the model's own training
      set (x, 1), with W = max(width + 1, d + 1); "rad_gen": the ramp-loss gap bound it gives
      (SSBD Thm 26.5, confidence ``delta``);
    - "margin": BFT's margin bound on the test 0-1 error, from the model's train ramp loss."""
    gamma = validate.positive(gamma, "gamma")
    delta = validate.positive(delta, "delta")
    if any(T != 1 for T, _, _ in res["configs"]):
        raise ValueError(f"res: expected a sweep of dense networks (T = 1 in every config), "
                         f"got configs {res['configs']}")
    n_s = len(res["seeds"])
    shape = (len(res["configs"]), len(res["ms"]), n_s)
    out = {key: np.zeros(shape) for key in ("R_A", "prod", "lower", "rad", "rad_gen", "margin")}
    for c, (_, _, width) in enumerate(res["configs"]):
        for i, m in enumerate(res["ms"]):
            for j in range(n_s):
                s = i * n_s + j
                mats = spectral.stacked_expert_matrices(res["stacks"][c], s, 0)
                r_a = spectral.spectral_complexity(mats)
                prod = spectral.spectral_product(mats)
                xt = _with_ones(res["train"][s][0])
                W = max(width + 1, xt.shape[1])
                x_norm = spectral.data_norm(xt)
                rad = spectral.ramp_rademacher_bound(r_a, x_norm, W, m, gamma)
                vals = {"R_A": r_a, "prod": prod, "lower": len(mats) ** 1.5 * prod, "rad": rad,
                        "rad_gen": spectral.ramp_gap_bound(rad, m, delta),
                        "margin": spectral.margin_bound(res["train_ramp"][c, i, j], r_a, x_norm,
                                                        W, m, gamma, delta)}
                for key, v in vals.items():
                    out[key][c, i, j] = v
    return out


def linear_mc_ratios(res: dict, spectral_res: dict, n_sigma: int, rng: np.random.Generator,
                     gamma: float, config: int = 0) -> np.ndarray:
    """For the linear expert of config ``config`` (width 0) of every trained model, in model order
    (m-major): the chained bound "rad" of ``spectral_bounds`` over the Monte Carlo Rademacher
    complexity of its norm ball, (R_A / m) E_sigma ||sum_i sigma_i (x_i, 1)||, divided by gamma
    (contraction), with ``n_sigma`` sign draws from ``rng`` (drawn model by model)."""
    n_sigma = validate.integer(n_sigma, "n_sigma", low=1)
    gamma = validate.positive(gamma, "gamma")
    if res["configs"][config][2] != 0:
        raise ValueError(f"config: expected a linear expert (width 0), got {res['configs'][config]}")
    n_s = len(res["seeds"])
    ratios = []
    for i in range(len(res["ms"])):
        for j in range(n_s):
            mc, _ = rademacher.linear_l2_mc(_with_ones(res["train"][i * n_s + j][0]), n_sigma, rng,
                                            spectral_res["R_A"][config, i, j])
            ratios.append(spectral_res["rad"][config, i, j] / (mc / gamma))
    return np.array(ratios)


# --- seed-spread statistics ---------------------------------------------------------------------


def median_interval(values: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Distribution-free interval for the median over seeds: (min, max) over the seeds, which covers
    the median of the seed distribution with probability 1 - 2^(1-n) for n seeds."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[axis] < 2:
        raise ValueError(f"values: expected at least 2 seeds along axis {axis}, got shape {values.shape}")
    return values.min(axis=axis), values.max(axis=axis)


def spearman(a, b) -> float:
    """Spearman rank correlation of two flat sequences (average ranks for ties)."""
    from scipy.stats import spearmanr
    a, b = np.ravel(a), np.ravel(b)
    if a.size != b.size or a.size < 3:
        raise ValueError(f"a, b: expected equal sizes >= 3, got {a.size} and {b.size}")
    return float(spearmanr(a, b).statistic)


# --- P3-L2: routing patterns of random ReLU routers ---------------------------------------------


def relu_router_patterns(points: np.ndarray, n_experts: int, k: int, width: int, depth: int,
                         n_draws: int, seed: int, gain: float = 1.0, chunk: int = 2000) -> dict:
    """Distinct top-k selection patterns on ``points`` (m, d) of ``n_draws`` random ReLU routers
    x -> A_{L+1} relu(... relu(A_1 x + b_1) ...) + b_{L+1} (``depth`` = L hidden layers of
    ``width``; weights and biases uniform on [-g/sqrt(fan_in), g/sqrt(fan_in)]: g = 1 is
    PyTorch's default initialisation, g = sqrt(6) the variance-preserving He scale for ReLU).

    Returns {"count": distinct patterns, "params": W, "n_draws"}; a pattern is the sequence of the
    m selected k-subsets (as sorted index tuples); ties go to the lower index."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"points: expected an (m, d) array, got shape {x.shape}")
    T = validate.integer(n_experts, "n_experts", low=1)
    k = validate.integer(k, "k", low=1, high=T)
    width = validate.integer(width, "width", low=1)
    depth = validate.integer(depth, "depth", low=1)
    n_draws = validate.integer(n_draws, "n_draws", low=1)
    chunk = validate.integer(chunk, "chunk", low=1)
    gain = validate.positive(gain, "gain")
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    sizes = [x.shape[1]] + [width] * depth + [T]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    codes = []
    for start in range(0, n_draws, chunk):
        n = min(chunk, n_draws - start)
        h = np.broadcast_to(x, (n,) + x.shape)
        for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            bound = gain / math.sqrt(a)
            w = rng.uniform(-bound, bound, size=(n, a, b))
            c = rng.uniform(-bound, bound, size=(n, 1, b))
            h = h @ w + c
            if j < len(sizes) - 2:
                h = np.maximum(h, 0)
        order = np.argsort(-h, axis=-1, kind="stable")[..., :k]   # (n, m, k), ties to lower index
        mask = np.zeros(h.shape, dtype=np.int64)
        np.put_along_axis(mask, order, 1, axis=-1)
        subset = (mask * (1 << np.arange(T))).sum(-1)             # the k-subset as a bitmask
        codes.append(subset)
    codes = np.concatenate(codes)
    count = int(np.unique(codes, axis=0).shape[0])
    return {"count": count, "params": int(params), "n_draws": n_draws}


# --- P3-FU: compositional skills, optimal k -----------------------------------------------------


def skill_teacher(d: int, n_skills: int, seed: int) -> dict:
    """Teacher of the skills task: selection directions u_j and skills g_j(x) = sin(pi <v_j, x>)."""
    d = validate.integer(d, "d", low=1)
    n_skills = validate.integer(n_skills, "n_skills", low=1)
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    return {"u": rng.normal(size=(n_skills, d)),
            "v": rng.normal(size=(n_skills, d)) / math.sqrt(d)}


def skill_data(n: int, teacher: dict, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x uniform on [-1, 1]^d; S(x) = the c skills with the largest <u_j, x>; y = sum_{j in S(x)}
    g_j(x). Returns x (n, d), y (n, 1) float64 tensors."""
    n = validate.integer(n, "n", low=1)
    u, v = teacher["u"], teacher["v"]
    c = validate.integer(c, "c", low=1, high=u.shape[0])
    rng = np.random.default_rng(validate.integer(seed, "seed", low=0))
    x = rng.uniform(-1, 1, size=(n, u.shape[1]))
    chosen = np.argsort(-(x @ u.T), axis=1, kind="stable")[:, :c]
    g = np.sin(math.pi * (x @ v.T))
    y = np.take_along_axis(g, chosen, axis=1).sum(1)
    return torch.from_numpy(x), torch.from_numpy(y[:, None])


def skill_sweep(ks: Sequence[int], cs: Sequence[int], ms: Sequence[int], seeds: Sequence[int],
                n_experts: int, width: int, steps: int, lr: float, batch_size: int,
                n_test: int, teacher: dict, data_seed: int = 0) -> dict:
    """Test MSE of top-k SMoEs (T = n_experts 2-layer ReLU experts) on the skills task: one stack
    per k; its models are the (c, m, seed) triples, each with its own training and test set.
    Returns {"mse": (len(ks), len(cs), len(ms), len(seeds)), "k_star": (len(cs), len(ms),
    len(seeds)) argmin over ks (the smallest k on ties)}."""
    ks = [validate.integer(k, "k", low=1, high=n_experts) for k in ks]
    triples = [(c, m, s) for c in cs for m in ms for s in seeds]
    d = teacher["u"].shape[1]
    train = [skill_data(m, teacher, c, data_seed + 7919 * s + 31 * c + m) for c, m, s in triples]
    tests = [skill_data(n_test, teacher, c, data_seed + 104729 + 31 * c) for c, _, _ in triples]
    samplers = [dataset_sampler(x, y) for x, y in train]

    def build(k, ids):
        return stacked_class_members([d, 1], n_experts, width, [i + 1000 * k for i in ids], k=k)

    out = train_sweep(build, ks, list(range(len(triples))), samplers, tests, steps, lr=lr,
                      batch_size=batch_size, desc="P3-FU sweep")
    mse = out["mse"].reshape(len(ks), len(cs), len(ms), len(seeds))
    k_star = np.array(ks)[np.argmin(mse, axis=0)]
    return {"mse": mse, "k_star": k_star, "ks": ks, "cs": list(cs), "ms": list(ms)}


def optimal_k_analytic(a, beta, m, T: int, d_N: int, delta: float = 0.05,
                       exact: bool = False) -> np.ndarray:
    """k* = argmin_k a k^(-beta) + routing_term(m, T, k, d_N) over k = 1..T (smallest on ties),
    broadcast over a, beta, m."""
    T = validate.integer(T, "T", low=1)
    a, beta, m = np.broadcast_arrays(np.asarray(a, float), np.asarray(beta, float), np.asarray(m))
    k = np.arange(1, T + 1)
    total = (a[..., None] * k ** (-beta[..., None])
             + bounds.routing_term(m[..., None], T, k, d_N, delta, exact))
    return k[np.argmin(total, axis=-1)]


def sign_test_threshold(n: int, alpha: float = 0.05) -> int:
    """Smallest c with P(Binomial(n, 1/2) >= c) <= alpha: that many positive paired differences
    out of n reject 'no effect' (median difference 0) at level alpha, one-sided."""
    from scipy.stats import binom
    n = validate.integer(n, "n", low=1)
    alpha = validate.positive(alpha, "alpha")
    for c in range(n + 1):
        if binom.sf(c - 1, n, 0.5) <= alpha:
            return c
    return n + 1

"""Chapter drivers of the shallow-MoE chapters of P2 (Thm 4.8, Cor 4.9, the design chapter).

- ``SphereProblem`` / ``sphere_problem``: S^d in R^D, cap centres and f(x) = |<x, v>|^p in
  intrinsic coordinates; ``critical_points`` where most caps overlap;
- ``evaluate``: run a built construction and measure every quantity of its proof;
- the routing lemma on given partitions of unity: ``perturbed_scores``, ``valid_route_fraction``,
  ``adversarial_threshold``, ``routing_table``;
- ``parameter_table``, ``effective_expert_params``;
- ``theorem_4_8_sweep`` / ``corollary_4_9_sweep``: the chapters' grids over D and m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import geometry as geo
from .. import validate
from ..analysis.rates import loglog_slope
from ..constructions.p2_shallow import (
    LocalFit,
    ShallowConstruction,
    build_corollary_4_9,
    build_theorem_4_8,
    fit_local_functions,
    fit_partition_net,
)
from ..fitting.random_features import fit_gaussian_features
from ..models.experts import mlp_param_count, n_nonzero, n_params
from ..models.moe import DeepMoE
from ..progress import progress
from ..seed import generator
from ..validate import DTYPE


@dataclass
class AbsPowerTarget:
    """f(x) = |<x, v>|^p. For 1 < p < 2 it is C^1 but not C^2 near {<x, v> = 0}: kappa(f) = 1.

    On the unit ball its gradient p |<x,v>|^{p-1} sign(<x,v>) v has norm <= p ||v||: that is
    ``lipschitz`` (for p >= 1).
    """

    direction: torch.Tensor
    power: float = 1.5

    def __post_init__(self):
        self.direction = validate.tensor(self.direction, "direction", ndim=1).to(DTYPE)
        p = validate.positive(self.power, "power")
        if p < 1:
            raise ValueError(f"power: expected p >= 1 (a Lipschitz target), got {p}")

    def __call__(self, x) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.direction.numel()).to(DTYPE)
        return (x @ self.direction).abs() ** self.power

    @property
    def lipschitz(self) -> float:
        return float(self.power * torch.linalg.vector_norm(self.direction))


@dataclass
class SphereProblem:
    """A test problem on S^d in R^D, given in intrinsic coordinates: cap centres c~_i (E, d+1) and
    the target f(x) = |<x, v>|^p with v = Q v~. Everything the constructions *fit* is computed from
    these intrinsic numbers, so with fixed seeds the fits are bitwise the same for every D; only
    evaluating the embedded network rounds differently. Unpacks as (manifold, centres, target)."""

    manifold: geo.Sphere
    centres_intrinsic: torch.Tensor
    direction_intrinsic: torch.Tensor
    power: float = 1.5

    @property
    def centres(self) -> torch.Tensor:
        return self.manifold.embed(self.centres_intrinsic)

    @property
    def target(self) -> AbsPowerTarget:
        return AbsPowerTarget(self.manifold.embed(self.direction_intrinsic[None, :])[0], self.power)

    @property
    def intrinsic_target(self) -> AbsPowerTarget:
        return AbsPowerTarget(self.direction_intrinsic, self.power)

    @property
    def n_charts(self) -> int:
        return self.centres_intrinsic.shape[0]

    def __iter__(self):
        return iter((self.manifold, self.centres, self.target))


def sphere_problem(d: int, D: int, *, embed_seed: int = 0, centre_seed: int = 0,
                   power: float = 1.5) -> SphereProblem:
    """The test problem of the shallow-MoE chapters: S^d in R^D (random orthogonal embedding),
    cap centres (E = 4 equally spaced arcs for d = 1, the 2(d+1) rotated axis points for d >= 2)
    and f(x) = |<x, v>|^power with v the embedded unit vector along (1, 2, ..., d+1)."""
    M = geo.Sphere(d, D, seed=embed_seed)
    M0 = geo.Sphere(d)
    C0 = M0.arc_centres(4) if d == 1 else geo.rotated_axis_centres(M0, centre_seed)
    v = torch.arange(1, d + 2, dtype=DTYPE)
    return SphereProblem(M, C0, v / torch.linalg.vector_norm(v), power)


def critical_points(manifold: geo.Sphere, n_charts: int | None = None,
                    centre_seed: int = 0) -> torch.Tensor:
    """The points of S^d where the caps of ``sphere_problem`` overlap most, i.e. where
    max_j rho_j is smallest and routing is most fragile, (P, D).

    d = 1 (``n_charts`` equally spaced arcs): the midpoints between neighbouring centres.
    d >= 2 (rotated axis centres): the 2^(d+1) points R s / sqrt(d+1), s in {-1, 1}^(d+1), each
    equidistant from d + 1 centres.
    """
    if not isinstance(manifold, geo.Sphere):
        raise ValueError(f"manifold: expected a moe_lib.geometry.Sphere, got {manifold!r}")
    if manifold.d == 1:
        E = validate.integer(4 if n_charts is None else n_charts, "n_charts", low=1)
        a = math.pi / E + 2.0 * math.pi * torch.arange(E, dtype=DTYPE) / E
        return manifold.from_angles(a)
    k = manifold.k
    signs = torch.cartesian_prod(*([torch.tensor([-1.0, 1.0], dtype=DTYPE)] * k)).reshape(-1, k)
    rot = geo.random_embedding(k, k, centre_seed)
    return manifold.embed(signs @ rot.T / math.sqrt(k))


def effective_expert_params(D: int, d: int, width: int) -> int:
    """Parameters of one layer-2 expert in factored form: psi (R^D -> R^d) plus g (R^d -> R),
    one hidden layer of ``width`` each. (Merged, psi's output map and g's input map become one
    width x width matrix of rank d: that is what the 3-layer MLP stores.)"""
    return mlp_param_count(D, d, width, 2) + mlp_param_count(d, 1, width, 2)


def theorem_4_8_sweep(d: int, Ds: Sequence[int], widths: Sequence[int], radius: float,
                      n_test: int, *, seed: int = 0, embed_seed: int = 0, centre_seed: int = 0,
                      n_knots: int = 64, division_width: int = 128,
                      g_samples_per_feature: int = 20, psi_samples_per_feature: int = 8,
                      power: float = 1.5, dense_samples_per_feature: int = 8) -> dict:
    """Build Psi in H^{2,E}_{3,m} for every ambient D and expert width m, and measure it on
    ``n_test`` uniform points of S^d (the same intrinsic points for every D).

    g_i depends on m only (chart space is R^d), so it is fitted once per m and shared by all D;
    psi_i and layer 1 are rebuilt for each D. Alongside, a dense one-hidden-layer network in R^D
    with (D + 2) w + 1 = ``effective_expert_params`` parameters is fitted to f (Gaussian random
    features on points of M). The test points are the ``n_test`` samples plus the
    ``critical_points``. Returns a dict of lists indexed [D][m] (``error``, ``fit_sup``,
    ``chart_err``, ``dense_error``, ``dense_width``), per-D ``slope``, ``dense_slope``,
    ``score_err`` (||tau - rho||_inf), ``params`` (``parameter_table`` at the largest m) and the
    worst values over the whole grid: ``bound_slack`` = max (|Psi - f| - bound), ``valid``
    (min route-valid fraction), ``in_ball`` (all images psi(x) inside the fitted ball),
    ``piece_gap``, ``carry_err``.
    """
    widths = [validate.integer(m, "width", low=1) for m in widths]
    Ds = [validate.integer(D, "D", low=d + 1) for D in Ds]
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least 2 widths for a slope, got {widths}")
    local: dict[int, list[LocalFit]] = {}
    out = {k: {} for k in ("error", "fit_sup", "chart_err", "dense_error", "dense_width",
                           "slope", "dense_slope", "score_err", "params")}
    worst = {"bound_slack": -math.inf, "valid": 1.0, "in_ball": True, "piece_gap": 0.0,
             "carry_err": 0.0}
    for D in progress(Ds, desc=f"S^{d}: D"):
        problem = sphere_problem(d, D, embed_seed=embed_seed, centre_seed=centre_seed,
                                 power=power)
        M, C, f = problem
        x = torch.cat([M.sample(n_test, seed + 7),
                       critical_points(M, C.shape[0], centre_seed)])
        partition = fit_partition_net(M.sample(20000, seed + 1), C, radius, n_knots,
                                      division_width, seed + 2)
        layer1, mid = None, None
        rows = {k: [] for k in ("error", "fit_sup", "chart_err", "dense_error", "dense_width")}
        for m in widths:
            if m not in local:
                local[m] = fit_local_functions(M, C, radius, f, m, seed=seed,
                                               samples_per_feature=g_samples_per_feature)
            con = build_theorem_4_8(problem, radius, m, seed=seed, partition=partition,
                                    layer1=layer1, local_fits=local[m],
                                    samples_per_feature=psi_samples_per_feature)
            layer1 = con.network.layers[0]
            res = evaluate(con, x, mid)
            mid = res["mid"]
            rows["error"].append(float(res["error"].max()))
            rows["fit_sup"].append(float(res["fit_sup"].max()))
            rows["chart_err"].append(float(res["chart_err"].max()))
            slack = float((res["error"] - res["bound"]).max())
            worst["bound_slack"] = max(worst["bound_slack"], slack)
            worst["valid"] = min(worst["valid"], float(res["valid"].double().mean()))
            worst["in_ball"] = worst["in_ball"] and bool(res["in_ball"].all())
            worst["piece_gap"] = max(worst["piece_gap"], res["piece_gap"])
            worst["carry_err"] = max(worst["carry_err"], res["carry_err"])
            w = max(1, round((effective_expert_params(D, d, m) - 1) / (D + 2)))
            xs = M.sample(dense_samples_per_feature * w, seed + 11)
            dense = fit_gaussian_features(xs, f(xs), w, seed + 12)
            rows["dense_error"].append(float((dense.predict(x) - f(x)).abs().max()))
            rows["dense_width"].append(w)
        for k, v in rows.items():
            out[k][D] = v
        out["slope"][D] = loglog_slope(widths, rows["error"])
        out["dense_slope"][D] = loglog_slope(widths, rows["dense_error"])
        out["score_err"][D] = res["score_err"]
        out["params"][D] = parameter_table(con.network)
    out.update(worst)
    out["widths"], out["Ds"], out["n_experts"] = widths, Ds, int(C.shape[0])
    return out


def corollary_4_9_sweep(d: int, Ds: Sequence[int], widths: Sequence[int], radius: float,
                        n_test: int, *, seed: int = 0, embed_seed: int = 0, centre_seed: int = 0,
                        n_knots: int = 64, samples_per_feature: int = 8,
                        power: float = 1.5) -> dict:
    """Build Psi in H^{2,E}_{2,m} (linear charts) for every D and m and measure it on ``n_test``
    uniform points of S^d (the same intrinsic points for every D). Route validity is also checked
    at the ``critical_points``; they are left out of the error, because several charts tie there
    exactly and rounding, which differs between D, picks among them.

    Returns dicts indexed [D] of lists over m: ``error`` (sup |Psi - f|), ``chart_error`` (max
    over experts of the chart-space error |g_i(u) - F_i(u)| at the routed points u = phi_i(x),
    computed without the network); per D: ``slope`` of ``error`` in m, ``score_err``
    (||b_hat / S - rho||_inf), ``params``; and worst values: ``gap`` = max |error - chart_error|,
    ``across_D`` = max over m of (max_D error - min_D error), ``valid``, ``piece_gap``,
    ``carry_err``.
    """
    widths = [validate.integer(m, "width", low=1) for m in widths]
    Ds = [validate.integer(D, "D", low=d + 1) for D in Ds]
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least 2 widths for a slope, got {widths}")
    out = {k: {} for k in ("error", "chart_error", "slope", "score_err", "params")}
    worst = {"gap": 0.0, "valid": 1.0, "piece_gap": 0.0, "carry_err": 0.0}
    for D in progress(Ds, desc=f"S^{d}: D"):
        problem = sphere_problem(d, D, embed_seed=embed_seed, centre_seed=centre_seed,
                                 power=power)
        M, C, f = problem
        x = M.sample(n_test, seed + 7)
        crit = critical_points(M, C.shape[0], centre_seed)
        partition = fit_partition_net(M.sample(20000, seed + 1), C, radius, n_knots, None,
                                      seed + 2)
        layer1, mid = None, None
        err, cerr = [], []
        for m in widths:
            con = build_corollary_4_9(problem, radius, m, seed=seed, partition=partition,
                                      layer1=layer1, samples_per_feature=samples_per_feature)
            layer1 = con.network.layers[0]
            res = evaluate(con, x, mid)
            mid = res["mid"]
            err.append(float(res["error"].max()))
            cerr.append(float(res["chart_fit_err"].max()))
            worst["gap"] = max(worst["gap"], abs(err[-1] - cerr[-1]))
            worst["valid"] = min(worst["valid"], float(res["valid"].double().mean()))
            if m == widths[0]:      # routes depend on layer 1 only, the same for every m
                at_crit = evaluate(con, crit)
                worst["valid"] = min(worst["valid"], float(at_crit["valid"].double().mean()))
            worst["piece_gap"] = max(worst["piece_gap"], res["piece_gap"])
            worst["carry_err"] = max(worst["carry_err"], res["carry_err"])
        out["error"][D], out["chart_error"][D] = err, cerr
        out["slope"][D] = loglog_slope(widths, err)
        out["score_err"][D] = res["score_err"]
        out["params"][D] = parameter_table(con.network)
    errs = torch.tensor([out["error"][D] for D in Ds], dtype=DTYPE)
    worst["across_D"] = float((errs.max(dim=0).values - errs.min(dim=0).values).max())
    out.update(worst)
    out["widths"], out["Ds"], out["n_experts"] = widths, Ds, int(C.shape[0])
    return out


def routing_table(rho, sizes: Sequence[float], kinds: Sequence[str] = ("uniform", "adversarial"),
                  seed: int = 0) -> list[dict]:
    """For each kind and size: tau = ``perturbed_scores(rho, size, kind)``, the measured
    ||tau - rho||_inf and the valid-route fraction of argmax tau."""
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    rows = []
    for kind in kinds:
        for j, size in enumerate(sizes):
            tau = perturbed_scores(rho, size, kind, seed + j)
            rows.append({"kind": kind, "size": float(size),
                         "measured": float((tau - rho).abs().max()),
                         "valid": valid_route_fraction(rho, tau)})
    return rows


def valid_route_fraction(rho, scores) -> float:
    """Fraction of rows where the top-1 index of ``scores`` (ties to the lower index, as the
    gate) has rho > 0, i.e. x lies in the support of the chosen chart's rho."""
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    scores = validate.tensor(scores, "scores", ndim=2, last=rho.shape[1]).to(DTYPE)
    if scores.shape[0] != rho.shape[0]:
        raise ValueError(f"scores: expected {rho.shape[0]} rows, got {scores.shape[0]}")
    idx = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :1]
    return float((rho.gather(1, idx) > 0).double().mean())


def perturbed_scores(rho, size: float, kind: str = "uniform",
                     seed: int | torch.Generator = 0) -> torch.Tensor:
    """tau = rho + eta with sup |eta| <= ``size``.

    kind "uniform": eta iid U[-size, size]. kind "adversarial": eta = +size on the charts with
    rho_j(x) = 0 and -size on the others, the perturbation of this size most likely to route x
    outside its valid charts.
    """
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    size = validate.positive(size, "size")
    kind = validate.choice(kind, "kind", ("uniform", "adversarial"))
    if kind == "uniform":
        gen = generator(seed)
        return rho + size * (2.0 * torch.rand(rho.shape, generator=gen, dtype=DTYPE) - 1.0)
    return rho + torch.where(rho > 0, -size, size)


def adversarial_threshold(rho) -> float:
    """min over rows with some rho_j = 0 of max_i rho_i / 2: no perturbation with sup < this can
    route such a row to a chart with rho = 0, and the adversarial one of any larger size does.
    (Rows where every rho_j > 0 can never be misrouted.) Always >= 1 / (2E)."""
    rho = validate.tensor(rho, "rho", ndim=2).to(DTYPE)
    exposed = (rho == 0).any(dim=1)
    if not bool(exposed.any()):
        return math.inf
    return float(rho[exposed].max(dim=1).values.min() / 2.0)


def parameter_table(net: DeepMoE) -> list[dict]:
    """Per layer: stored parameters, active parameters (gate + one expert, top-1), and the
    nonzero active parameters (zero padding and identity blocks not counted)."""
    rows = []
    for k, layer in enumerate(net.layers):
        big = max(layer.experts, key=n_params)
        rows.append({"layer": k + 1, "stored": layer.stored_params(),
                     "active": layer.active_params(),
                     "active_nonzero": n_nonzero(layer.router) + n_nonzero(big)})
    return rows


def evaluate(con: ShallowConstruction, x, mid: torch.Tensor | None = None) -> dict:
    """Run Psi on the points x of M and measure every quantity of the proof. Returns a dict:

    output, target, error (N,) |Psi - f|; route (N,) the layer-2 expert; rho (N, E);
    mid (N, D + E) the output of layer 1 (pass it back as ``mid`` to skip recomputing layer 1
    when only layer 2 changed); carry_err max |mid[:, :D] - x|; score (N, E) what the gate reads
    (tau, or the bumps b_hat); score_err ||tau - rho||_inf, or ||b_hat / S - rho||_inf for bumps
    (S = sum_j b_j, the rescaling that does not change the argmax); valid (N,) rho_route(x) > 0;
    piece_gap max |Psi - g_i(psi_i(x))| (the network computes its pieces).
    Stereographic charts: chart_err (N,) |psi_i(x) - phi_i(x)| for the routed i; fit_sup (E,)
    max |g_i - F_i| over the grid of the chart ball and the routed images psi_i(x) inside it;
    in_ball (N,); lipschitz = Lip(f) x 2 >= Lip(F_i); bound (N,) fit_sup[i] + Lip * chart_err.
    Linear charts: chart_fit_err (N,) |g_i(u) - F_i(u)| at u = phi_i(x), in chart space.
    """
    x = validate.tensor(x, "x", ndim=2, last=con.manifold.D).to(DTYPE)
    E, D = con.n_experts, con.manifold.D
    layer1, layer2 = con.network.layers
    with torch.no_grad():
        if mid is None:
            mid = layer1(x)
        mid = validate.tensor(mid, "mid", ndim=2, last=D + E)
        routing = layer2.route(mid)
        out = layer2(mid, routing=routing)[:, 0]
    route = routing.idx[:, 0]
    pu = geo.partition_of_unity(x, con.centres, con.radius)
    score = mid[:, D:]
    f = con.target(x)
    res = {"output": out, "target": f, "error": (out - f).abs(), "route": route, "rho": pu.rho,
           "mid": mid, "score": score, "carry_err": float((mid[:, :D] - x).abs().max())}
    scaled = score if con.normalised else score / pu.total[:, None]
    res["score_err"] = float((scaled - pu.rho).abs().max())
    res["valid"] = pu.rho.gather(1, route[:, None])[:, 0] > 0
    pieces = torch.empty(x.shape[0], dtype=DTYPE)
    for i in range(E):
        rows = route == i
        if bool(rows.any()):
            pieces[rows] = con.expert_output(i, x[rows])
    res["piece_gap"] = float((pieces - out).abs().max())
    if con.charts[0].psi is None:
        cfe = torch.empty(x.shape[0], dtype=DTYPE)
        for i in range(E):
            rows = route == i
            if bool(rows.any()):
                u = con.charts[i].chart(x[rows])
                cfe[rows] = (con.charts[i].g.predict(u).reshape(-1) - con.local_target(i, u)).abs()
        res["chart_fit_err"] = cfe
        return res
    lip = con.target.lipschitz * geo.StereographicChart.lipschitz_factor
    d = con.manifold.d
    chart_err = torch.zeros(x.shape[0], dtype=DTYPE)
    in_ball = torch.ones(x.shape[0], dtype=torch.bool)
    fit_sup = torch.empty(E, dtype=DTYPE)
    for i in range(E):
        c = con.charts[i]
        rows = route == i
        sup = c.local.grid_sup
        if bool(rows.any()):
            v = c.psi.predict(x[rows]).reshape(-1, d)
            chart_err[rows] = torch.linalg.vector_norm(v - c.chart(x[rows]), dim=1)
            inside = torch.linalg.vector_norm(v, dim=1) <= c.local.radius
            in_ball[rows] = inside
            if bool(inside.any()):
                at = (c.g.predict(v[inside]).reshape(-1) - con.local_target(i, v[inside])).abs()
                sup = max(sup, float(at.max()))
        fit_sup[i] = sup
    res.update(chart_err=chart_err, in_ball=in_ball, fit_sup=fit_sup, lipschitz=lip,
               bound=fit_sup[route] + lip * chart_err)
    return res

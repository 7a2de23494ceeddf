"""Chapter drivers for Part I (Kratsios et al.): routing trees (P1-DEF), Lipschitz approximation
(P1-R1), the experts/size trade-off (P1-R2) and vector-valued targets (P1-R5)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .. import validate
from ..constructions import p1_lipschitz as pl
from ..models import routing_tree as rt
from ..models.routing import GridRouter

# ----------------------------------------------------------------------------- P1-DEF


def routing_agreement(n: int, depth: int, n_uniform: int, per_face: int,
                      rng: np.random.Generator, brute_budget: int = 20_000_000) -> dict:
    """Flat router vs 2^n-ary tree vs k-d tree vs brute force on uniform, face and corner points.

    Brute force (argmin over all K centres) costs K per point: it runs on a random subset of at
    most ``brute_budget / K`` points of each set (all of them when the budget allows).
    """
    N = 2 ** validate.integer(depth, "depth", low=0)
    flat, tree, kd = GridRouter(n, N), rt.DyadicTreeRouter(n, depth), rt.KDTreeRouter(n, N)
    sets = {"uniform": torch.from_numpy(rng.random((n_uniform, n))),
            "faces": rt.face_points(n, N, per_face, rng), "corners": rt.grid_corners(n, N)}
    centres = rt.cell_centres(n, N)
    out = {"n": n, "depth": depth, "K": N ** n, "n_points": 0, "router_mismatch": 0,
           "brute_mismatch_off_ties": 0, "off_ties": 0, "ties": 0, "tie_not_nearest": 0.0,
           "brute_points": 0}
    per_set = max(1, brute_budget // (N ** n * len(sets)))
    for x in sets.values():
        a = flat(x).idx[:, 0]
        cell_t, path = tree.route_with_path(x)
        cell_k, length = kd.route_with_path(x)
        out["n_points"] += x.shape[0]
        out["router_mismatch"] += int((a != cell_t).sum() + (a != cell_k).sum())
        out["tree_levels"] = int(path.shape[1])
        out["kd_max_path"] = max(out.get("kd_max_path", 0), int(length.max()))
        out["kd_min_path"] = min(out.get("kd_min_path", 10 ** 9), int(length.min()))
        if x.shape[0] > per_set:
            keep = torch.from_numpy(rng.choice(x.shape[0], per_set, replace=False))
            x, a = x[keep], a[keep]
        out["brute_points"] += x.shape[0]
        tie = rt.on_a_face(x, N)
        for norm in (2, math.inf):
            b, dmin = rt.brute_force_cells(x, centres, norm)
            out["brute_mismatch_off_ties"] += int((a != b)[~tie].sum())
            # on a tie the flat router's cell must be one of the nearest: same distance as the min
            d_own = torch.linalg.vector_norm(x - centres[a], ord=norm, dim=1)
            gap = (d_own - dmin)[tie]
            out["tie_not_nearest"] = max(out["tie_not_nearest"], float(gap.max()) if gap.numel() else 0.0)
        out["off_ties"] += int((~tie).sum())
        out["ties"] += int(tie.sum())
    ones = sets["corners"][(sets["corners"] == 1).any(dim=1)]
    last = (ones == 1) * (N - 1)
    coords = flat.cell_coords(ones)
    out["x_is_one_to_last_cell"] = bool(((ones == 1) <= (coords == last)).all())
    out["tree_path_numbers"] = tree.path_numbers
    out["kd_path_numbers"] = kd.path_numbers
    out["tree_stored"], out["kd_stored"] = tree.stored_numbers, kd.stored_numbers
    return out


def routing_timing(n: int, depths: list[int], n_points: int, rng: np.random.Generator,
                   repeats: int = 3) -> list[dict]:
    """Seconds per point of the k-d tree, the 2^n-ary tree and brute force (best of ``repeats``)."""
    x = torch.from_numpy(rng.random((n_points, n)))
    rows = []
    for D in depths:
        N = 2 ** D
        tree, kd, centres = rt.DyadicTreeRouter(n, D), rt.KDTreeRouter(n, N), rt.cell_centres(n, N)
        row = {"n": n, "depth": D, "K": N ** n}
        for name, fn in (("tree", lambda t=tree: t(x)), ("kd", lambda t=kd: t(x)),
                         ("brute", lambda c=centres: rt.brute_force_cells(x, c, 2))):
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            row[name] = best / n_points
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- P1-R1


def approximation_row(name: str, n: int, eps: float, kind: str, q: int, n_random: int,
                      rng: np.random.Generator, n_cells: int = 200, max_dense: int = 2_000_000) -> dict:
    """Build E0 or E1 for one (target, n, eps) and measure its sup error on the 1/(qNm) grid."""
    f, lam = pl.target(name, n)
    validate.choice(kind, "kind", ("E0", "E1"))
    if kind == "E0":
        N, m = pl.e0_cells(lam, eps), 1
        model = pl.build_e0(f, n, N)
    else:
        N, m = pl.e1_grid(lam, eps, n)
        model = pl.build_e1(f, n, N, m)
    err, npts = pl.sup_error(model, f, n, q * N * m, n_random, rng, max_dense=max_dense,
                             n_cells=n_cells, cells_per_axis=N)
    expert = model.expert_parameters()[0]
    return {"target": name, "n": n, "eps": eps, "lam": lam, "kind": kind, "N": N, "m": m,
            "K": N ** n, "expert": expert, "path": model.router_path_numbers,
            "loaded": model.loaded_parameters(), "total": model.total_expert_parameters(),
            "sup_error": float(err.max()), "n_points": npts,
            "nodes": (m + 1) ** n if kind == "E1" else 1}


def approximation_sweep(targets: list[str], dims: dict, q: int, n_random: int,
                        rng: np.random.Generator, n_cells: int = 200) -> list[dict]:
    """Rows for every target, n, eps (``dims`` maps n -> list of eps) and both expert kinds."""
    return [approximation_row(t, n, eps, kind, q, n_random, rng, n_cells)
            for n, eps_list in dims.items() for eps in eps_list for t in targets
            for kind in ("E0", "E1")]


def loaded_ratio_bound(n: int, eps_list: list[float], lam: float) -> float:
    """Upper bound on max/min of eps * loaded(E1) over an eps grid (our derivation).

    loaded = c P + 1 + path with P = (m+1)^n, m = ceil(eps^(-1/n)) <= eps^(-1/n) + 1, so
    1 <= eps P <= (1 + 2 eps^(1/n))^n; path <= n ceil(log2 N) with N = ceil(lam eps^(1/n - 1)).
    """
    c = pl.hat_unit_params(n) + 1
    hi = max(c * (1 + 2 * e ** (1 / n)) ** n + e * (1 + n * math.ceil(math.log2(
        max(1, pl.e1_grid(lam, e, n)[0])))) for e in eps_list)
    lo = min(c + e for e in eps_list)
    return hi / lo


def experts_ratio_bound(n: int, eps_list: list[float], lam: float) -> float:
    """Upper bound on max/min of K eps^(n-1) / lam^n: N = ceil(lam eps^(1/n-1)) <= lam eps^(1/n-1) + 1."""
    return max((1 + e ** (1 - 1 / n) / lam) ** n for e in eps_list)


# ----------------------------------------------------------------------------- P1-R2


def tradeoff_sweep(n: int, eps: float, name: str, q: int, n_random: int, rng: np.random.Generator,
                   n_cells: int = 200) -> list[dict]:
    """E1 with N = 2^D, D = 0..ceil(log2(lam/eps)), m = ceil(lam/(N eps)); then E0 (the other end)."""
    f, lam = pl.target(name, n)
    rows = []
    for D in range(0, math.ceil(math.log2(lam / eps) - 1e-12) + 1):
        N = 2 ** D
        m = pl.ceil_(lam / (N * eps))
        model = pl.build_e1(f, n, N, m)
        err, _ = pl.sup_error(model, f, n, q * N * m, n_random, rng, n_cells=n_cells,
                              cells_per_axis=N)
        rows.append(_tradeoff_row("E1", n, eps, D, N, m, model, float(err.max())))
    N = pl.e0_cells(lam, eps)
    model = pl.build_e0(f, n, N)
    err, _ = pl.sup_error(model, f, n, q * N, n_random, rng, n_cells=n_cells, cells_per_axis=N)
    rows.append(_tradeoff_row("E0", n, eps, None, N, 0, model, float(err.max())))
    return rows


def _tradeoff_row(kind, n, eps, D, N, m, model, err) -> dict:
    bank = model.banks[0]
    L, J, W = N ** n, bank.depth, bank.width
    P_tot = L * bank.params_per_expert + int(getattr(model.router, "stored_numbers", 0))
    return {"kind": kind, "n": n, "eps": eps, "D": D, "N": N, "m": m, "K": L,
            "nodes": (m + 1) ** n if kind == "E1" else 1, "expert": bank.params_per_expert,
            "loaded": model.loaded_parameters(), "K_nodes": L * ((m + 1) ** n if m else 1),
            "sup_error": err, "J": J, "W": W, "V": L * max(n * L, J * W),
            "bartlett": P_tot * J * math.log2(P_tot), "delta": 1.0 / N}


def choose_under_cap(rows: list[dict], cap: float) -> dict | None:
    """The row minimising the VC proxy V among those with loaded parameters <= cap (None if none)."""
    ok = [r for r in rows if r["loaded"] <= cap]
    return min(ok, key=lambda r: (r["V"], r["loaded"])) if ok else None


def nodes_ratio_bound(n: int, eps: float, lam: float, N_max: int) -> float:
    """max/min of K (m+1)^n = (N (m+1))^n over the sweep: lam/eps + N <= N(m+1) < lam/eps + 2N."""
    return ((lam / eps + 2 * N_max) / (lam / eps + 1)) ** n


# ----------------------------------------------------------------------------- P1-R5


def vector_rows(names: list[str], n: int, eps: float, q: int, n_random: int,
                rng: np.random.Generator) -> dict:
    """f = (f_1..f_d) on [0,1]^n with a shared router (finest grid) or one router per output."""
    fs = [pl.target(t, n) for t in names]
    # one router per output: each component's own E1 construction
    per = []
    for (f, lam), t in zip(fs, names, strict=True):
        N, m = pl.e1_grid(lam, eps, n)
        model = pl.build_e1(f, n, N, m)
        err, _ = pl.sup_error(model, f, n, q * N * m, n_random, rng)
        per.append({"target": t, "N": N, "m": m, "expert": model.expert_parameters()[0],
                    "path": model.router_path_numbers, "sup_error": float(err[0])})
    # shared router: the finest grid of the components, m_c = ceil(lam_c / (N eps)) per output
    N = max(r["N"] for r in per)
    ms = [pl.ceil_(lam / (N * eps)) for _, lam in fs]
    from ..models.momlp import ConcatBank, MoMLP
    banks = [pl.e1_bank(f, n, N, m) for (f, _), m in zip(fs, ms, strict=True)]
    stacked = MoMLP(rt.KDTreeRouter(n, N), ConcatBank(banks))
    # component c of the stacked expert is the scalar E1 with (N, m_c): test it on its own grid
    err_s = [float(pl.sup_error(stacked, [f for f, _ in fs], n, q * N * m, n_random, rng)[0][c])
             for c, m in enumerate(ms)]
    # shared router and shared hat units: one m = max m_c for all outputs
    m_sh = max(ms)
    shared = pl.build_e1([f for f, _ in fs], n, N, m_sh)
    err_h, _ = pl.sup_error(shared, [f for f, _ in fs], n, q * N * m_sh, n_random, rng)
    scalar_on_shared = [pl.e1_expert_params(n, m) for m in ms]
    return {"eps": eps, "n": n, "per_output": per, "N_shared": N, "m_shared": ms,
            "stacked_expert": stacked.expert_parameters()[0],
            "stacked_path": stacked.router_path_numbers,
            "stacked_errors": err_s,
            "scalar_on_shared": scalar_on_shared,
            "hat_shared_expert": shared.expert_parameters()[0], "m_hat_shared": m_sh,
            "hat_shared_errors": [float(e) for e in err_h],
            "per_output_loaded": sum(r["expert"] + r["path"] for r in per),
            "per_output_path": sum(r["path"] for r in per),
            "stacked_loaded": stacked.loaded_parameters(), "hat_shared_loaded": shared.loaded_parameters()}

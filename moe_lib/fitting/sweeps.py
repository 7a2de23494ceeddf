"""Parameter sweeps: the model axis of a sweep, reshaping per-model results, and training one
stack of models per sweep value.

- ``sweep_axis(values, seeds)``: (value, seed) pairs, value-major, as two flat lists;
- ``by_value(per_model, n_values)``: (S,) -> (n_values, n_seeds);
- ``dense_width(active, d_in, d_out)``: the dense width with about ``active`` parameters;
- ``train_sweep(build, values, seeds, sampler, test, steps, ...)``: one ``fit`` per value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import validate
from ..models.stacked import StackedMoE
from .train import fit, mse


def sweep_axis(values: Sequence, seeds: Sequence[int]) -> tuple[list, list[int]]:
    """The model axis of a sweep: (value, seed) pairs, value-major, as two flat lists."""
    values, seeds = list(values), list(seeds)
    if not values or not seeds:
        raise ValueError(f"expected at least one sweep value and one seed, "
                         f"got {values} and {seeds}")
    return [v for v in values for _ in seeds], [s for _ in values for s in seeds]


def by_value(per_model: np.ndarray, n_values: int) -> np.ndarray:
    """Reshape a per-model array (S,) of a value-major sweep into (n_values, n_seeds)."""
    per_model = np.asarray(per_model, dtype=np.float64)
    if per_model.ndim != 1 or per_model.size % n_values:
        raise ValueError(f"per_model: expected a flat array whose length is a multiple of "
                         f"{n_values}, got shape {per_model.shape}")
    return per_model.reshape(n_values, -1)


def dense_width(active: int, d_in: int, d_out: int = 1) -> int:
    """Hidden width w of a 2-layer ReLU net d_in -> w -> d_out whose parameter count
    w (d_in + 1) + w d_out + d_out is closest to ``active`` (ties to the smaller w)."""
    active = validate.integer(active, "active", low=1)
    d_in = validate.integer(d_in, "d_in", low=1)
    d_out = validate.integer(d_out, "d_out", low=1)
    per_unit = d_in + 1 + d_out
    lo = max(1, (active - d_out) // per_unit)
    return min((lo, lo + 1), key=lambda w: (abs(w * per_unit + d_out - active), w))


def train_sweep(build: Callable[[object, list[int]], StackedMoE], values: Sequence,
                seeds: Sequence[int], sampler, test, steps: int, lr: float = 1e-3,
                batch_size: int = 128, data_seed_offset: int = 1000, desc: str = "",
                lr_final: float | None = None) -> dict:
    """Train one stack ``build(value, seeds)`` per sweep value (S = len(seeds) models each) with
    ``moe_lib.fitting.train.fit``; model seed s draws its minibatches with data seed
    s + data_seed_offset, the same stream for every value (common random numbers across the sweep).
    ``lr_final``: see ``fit`` (None, the default, keeps the learning rate constant).

    ``sampler`` (a ``moe_lib.fitting.train`` sampler) and ``test`` (a pair x, y) are either one
    object for every value or a dict {value: object} (e.g. inputs of a different size per value).
    Either object (or a dict's entry) may also be a *list with one entry per seed*: model s then
    trains on its own sampler (e.g. its own fixed training set, for train/test gaps over independent
    samples) and its test MSE is taken on its own test pair.

    Returns {"mse": (n_values, n_seeds) test MSE, "final_train": the same shape, mean minibatch loss
    over the last 100 steps, "stacks": the trained stacks, "histories": (steps, n_seeds) arrays}.
    """
    values, seeds = list(values), list(seeds)
    if not values or not seeds:
        raise ValueError(f"expected at least one sweep value and one seed, "
                         f"got {values} and {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct seeds, got {seeds}")
    data_seeds = [s + data_seed_offset for s in seeds]
    out: dict = {"mse": [], "final_train": [], "stacks": [], "histories": []}
    for name, obj in (("sampler", sampler), ("test", test)):
        if isinstance(obj, dict) and set(obj) != set(values):
            raise ValueError(f"{name}: expected a dict keyed by the sweep values {values}, "
                             f"got keys {sorted(obj)}")
    for v in values:
        smp = sampler[v] if isinstance(sampler, dict) else sampler
        tst = test[v] if isinstance(test, dict) else test
        x_test, y_test = (tst, None) if isinstance(tst, list) else tst
        stack = build(v, seeds)
        if stack.n_models != len(seeds):
            raise ValueError(f"build({v!r}, seeds): expected a stack of {len(seeds)} models, "
                             f"got {stack.n_models}")
        result = fit(stack, _per_seed_sampler(smp, data_seeds), steps, batch_size=batch_size,
                     lr=lr, seeds=data_seeds, desc=f"{desc} {v}".strip(), lr_final=lr_final)
        out["mse"].append(_per_seed_mse(stack, x_test, y_test, len(seeds)))
        out["final_train"].append(result.final(min(100, result.steps)))
        out["stacks"].append(stack)
        out["histories"].append(result.history)
    out["mse"] = np.array(out["mse"])
    out["final_train"] = np.array(out["final_train"])
    return out


def _per_seed_sampler(sampler, data_seeds: list[int]):
    """One sampler, or a list of one sampler per model dispatched on the generator's seed."""
    if not isinstance(sampler, list):
        return sampler
    if len(sampler) != len(data_seeds):
        raise ValueError(f"sampler: expected one sampler per seed ({len(data_seeds)}), "
                         f"got a list of {len(sampler)}")
    by_seed = dict(zip(data_seeds, sampler, strict=True))

    def sample(n: int, generator):
        return by_seed[generator.initial_seed()](n, generator)

    return sample


def _per_seed_mse(stack, x_test, y_test, n_seeds: int) -> np.ndarray:
    """Test MSE of every model: on one shared pair, or model s on the s-th pair of a list."""
    if y_test is not None:
        return mse(stack, x_test, y_test)
    if len(x_test) != n_seeds:
        raise ValueError(f"test: expected one (x, y) pair per seed ({n_seeds}), "
                         f"got a list of {len(x_test)}")
    return np.array([mse(stack, x, y)[s] for s, (x, y) in enumerate(x_test)])

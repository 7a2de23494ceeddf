"""Which inputs take which routing path: task-by-path counts and purities.

A *path* is the tuple of experts an input visits, one per layer (``DeepMoE.forward_with_paths``).
For labelled inputs (a task per input) the counts n(task, path) show whether the router
separates the tasks:

- path purity  = (1/N) sum_paths max_task n(task, path): 1 iff every path carries one task;
- task purity  = (1/N) sum_tasks max_path n(task, path): 1 iff every task uses one path;
- both are 1 iff tasks map injectively to paths (a bijection onto the paths used).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import validate


def path_ids(paths, n_experts: int):
    """Each routing path (e_1, ..., e_L) of 0-based expert indices (the last axis) as the integer
    sum_l e_l E^(L-l). ``paths`` (..., L): a numpy array or a torch tensor; the result has the
    same kind and the leading shape (...)."""
    n_experts = validate.integer(n_experts, "n_experts", low=1)
    is_torch = isinstance(paths, torch.Tensor)
    arr = paths.numpy() if is_torch else np.asarray(paths)
    if arr.ndim < 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"paths: expected an integer array (..., layers), got shape {arr.shape} "
                         f"and dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_experts):
        raise ValueError(f"paths: expected expert indices in [0, {n_experts}), got values in "
                         f"[{arr.min()}, {arr.max()}]")
    ids = arr @ (n_experts ** np.arange(arr.shape[-1] - 1, -1, -1, dtype=arr.dtype))
    return torch.from_numpy(np.asarray(ids)) if is_torch else ids


def task_path_counts(tasks, path_index, n_tasks: int, n_paths: int) -> np.ndarray:
    """Counts n(task, path) as an (n_tasks, n_paths) integer array."""
    n_tasks = validate.integer(n_tasks, "n_tasks", low=1)
    n_paths = validate.integer(n_paths, "n_paths", low=1)
    tasks, path_index = np.asarray(tasks), np.asarray(path_index)
    if tasks.shape != path_index.shape or tasks.ndim != 1:
        raise ValueError(f"tasks, path_index: expected two 1-D arrays of equal length, got shapes "
                         f"{tasks.shape} and {path_index.shape}")
    for name, v, hi in (("tasks", tasks, n_tasks), ("path_index", path_index, n_paths)):
        if v.size and (v.min() < 0 or v.max() >= hi):
            raise ValueError(f"{name}: expected integers in [0, {hi}), got values in "
                             f"[{v.min()}, {v.max()}]")
    counts = np.zeros((n_tasks, n_paths), dtype=np.int64)
    np.add.at(counts, (tasks, path_index), 1)
    return counts


def _check_counts(counts) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.sum() <= 0 or (counts < 0).any():
        raise ValueError(f"counts: expected a nonnegative (tasks, paths) array with a positive "
                         f"total, got shape {counts.shape} and total {counts.sum()}")
    return counts


def path_purity(counts) -> float:
    """Fraction of inputs whose path's most frequent task is their own task."""
    counts = _check_counts(counts)
    return float(counts.max(axis=0).sum() / counts.sum())


def task_purity(counts) -> float:
    """Fraction of inputs that take their task's most frequent path."""
    counts = _check_counts(counts)
    return float(counts.max(axis=1).sum() / counts.sum())


def group_purity(groups, paths) -> float:
    """``task_purity`` of the counts n(group, path): the fraction of points whose path is the most
    common path of their group (1 = every group, e.g. every cell of a target, takes one path).
    ``groups`` and ``paths`` are nonnegative integers (N,), numpy or torch."""
    groups, paths = np.asarray(groups), np.asarray(paths)
    if groups.ndim != 1 or groups.shape != paths.shape or groups.size == 0:
        raise ValueError(f"groups, paths: expected two non-empty 1-D arrays of equal length, got "
                         f"shapes {groups.shape} and {paths.shape}")
    counts = task_path_counts(groups, paths, int(groups.max()) + 1, int(paths.max()) + 1)
    return task_purity(counts)


def is_bijection(counts) -> bool:
    """Every task occurs and uses exactly one path, and no path is shared by two tasks."""
    counts = _check_counts(counts)
    used = counts > 0
    return bool((used.sum(axis=1) == 1).all() and (used.sum(axis=0) <= 1).all())


def n_distinct_paths(paths: np.ndarray) -> int:
    """Number of distinct rows of a (N, depth) array of expert choices."""
    return int(np.unique(np.asarray(paths), axis=0).shape[0])

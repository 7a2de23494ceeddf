import numpy as np
import pytest

from moe_lib import path_stats as ps


def test_path_ids_are_mixed_radix():
    paths = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0], [3, 3, 3]])
    assert ps.path_ids(paths, 4).tolist() == [0, 1, 16, 63]


def test_counts_and_purities_on_a_hand_made_example():
    tasks = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    paths = np.array([0, 0, 1, 2, 2, 3, 3, 3])
    c = ps.task_path_counts(tasks, paths, 3, 5)
    assert c.tolist() == [[2, 1, 0, 0, 0], [0, 0, 2, 0, 0], [0, 0, 0, 3, 0]]
    assert ps.path_purity(c) == 1.0          # each used path carries one task
    assert ps.task_purity(c) == 7 / 8        # task 0 is split over two paths
    assert not ps.is_bijection(c)
    merged = ps.task_path_counts(tasks, np.array([0, 0, 0, 0, 0, 3, 3, 3]), 3, 5)
    assert ps.task_purity(merged) == 1.0 and ps.path_purity(merged) == 6 / 8
    assert not ps.is_bijection(merged)
    perm = ps.task_path_counts(np.arange(4).repeat(3), np.array([2, 0, 3, 1]).repeat(3), 4, 4)
    assert ps.is_bijection(perm) and ps.path_purity(perm) == ps.task_purity(perm) == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda: ps.path_ids(np.array([[0, 3]]), 3), "expert indices in \\[0, 3\\)"),
    (lambda: ps.path_ids(np.array([0.5, 1.0]), 3), "expected an integer array"),
    (lambda: ps.task_path_counts(np.array([0, 1]), np.array([0]), 2, 2), "equal length"),
    (lambda: ps.task_path_counts(np.array([0, 2]), np.array([0, 1]), 2, 2), "tasks: expected"),
    (lambda: ps.path_purity(np.zeros((2, 2))), "positive total"),
    (lambda: ps.is_bijection(np.array([1, 2])), "expected a nonnegative"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()

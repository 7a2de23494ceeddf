import numpy as np
import pytest
import torch

from moe_lib import analysis as an


def test_path_ids_are_mixed_radix():
    paths = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0], [3, 3, 3]])
    assert an.path_ids(paths, 4).tolist() == [0, 1, 16, 63]


def test_counts_and_purities_on_a_hand_made_example():
    tasks = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    paths = np.array([0, 0, 1, 2, 2, 3, 3, 3])
    c = an.task_path_counts(tasks, paths, 3, 5)
    assert c.tolist() == [[2, 1, 0, 0, 0], [0, 0, 2, 0, 0], [0, 0, 0, 3, 0]]
    assert an.path_purity(c) == 1.0          # each used path carries one task
    assert an.task_purity(c) == 7 / 8        # task 0 is split over two paths
    assert not an.is_bijection(c)
    merged = an.task_path_counts(tasks, np.array([0, 0, 0, 0, 0, 3, 3, 3]), 3, 5)
    assert an.task_purity(merged) == 1.0 and an.path_purity(merged) == 6 / 8
    assert not an.is_bijection(merged)
    perm = an.task_path_counts(np.arange(4).repeat(3), np.array([2, 0, 3, 1]).repeat(3), 4, 4)
    assert an.is_bijection(perm) and an.path_purity(perm) == an.task_purity(perm) == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda: an.path_ids(np.array([[0, 3]]), 3), "expert indices in \\[0, 3\\)"),
    (lambda: an.path_ids(np.array([0.5, 1.0]), 3), "expected an integer array"),
    (lambda: an.task_path_counts(np.array([0, 1]), np.array([0]), 2, 2), "equal length"),
    (lambda: an.task_path_counts(np.array([0, 2]), np.array([0, 1]), 2, 2), "tasks: expected"),
    (lambda: an.path_purity(np.zeros((2, 2))), "positive total"),
    (lambda: an.is_bijection(np.array([1, 2])), "expected a nonnegative"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_path_ids_keep_the_array_kind_and_leading_shape():
    paths = torch.tensor([[[0, 0], [0, 2]], [[2, 1], [1, 1]]])
    ids = an.path_ids(paths, 3)
    assert isinstance(ids, torch.Tensor) and ids.tolist() == [[0, 2], [7, 4]]


def test_group_purity_is_task_purity_of_group_counts():
    cells = torch.tensor([0, 0, 0, 1, 1, 1])
    assert an.group_purity(cells, torch.tensor([5, 5, 5, 2, 2, 2])) == 1.0
    assert an.group_purity(cells, torch.tensor([5, 5, 1, 2, 3, 4])) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="equal length"):
        an.group_purity(torch.tensor([1, 2, 3]), torch.tensor([1, 2]))

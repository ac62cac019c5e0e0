"""DTW against a cell-by-cell reference, and on a uniformly stretched sequence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from bark_kedro.evaluation.dtw import accumulated_cost, dtw


def reference_accumulated_cost(cost: np.ndarray) -> np.ndarray:
    """The textbook double loop over cells."""
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best = min(total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
            total[i, j] = cost[i - 1, j - 1] + best
    return total[1:, 1:]


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (7, 9), (23, 11)])
def test_accumulated_cost_matches_the_cell_by_cell_reference(shape):
    cost = np.random.default_rng(sum(shape)).random(shape)
    np.testing.assert_allclose(accumulated_cost(cost), reference_accumulated_cost(cost))


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (17, 9), (12, 30)])
def test_path_is_a_valid_optimal_alignment(shape):
    cost = np.random.default_rng(7).random(shape)
    result = dtw(cost)
    path = result.path
    assert tuple(path[0]) == (0, 0)
    assert tuple(path[-1]) == (shape[0] - 1, shape[1] - 1)
    steps = {tuple(step) for step in np.diff(path, axis=0)}
    assert steps <= {(1, 1), (1, 0), (0, 1)}
    assert result.cost == pytest.approx(cost[path[:, 0], path[:, 1]].sum())
    assert result.cost == pytest.approx(reference_accumulated_cost(cost)[-1, -1])


def test_a_stretched_sequence_aligns_along_the_stretch():
    def features(t):
        return np.stack([np.sin(0.3 * t), np.cos(0.3 * t), np.sin(0.11 * t)], axis=1)

    stretch = 1.5
    x = features(np.arange(100.0))
    y = features(np.arange(149.0) / stretch)  # the same curve, played 1.5x slower
    path = dtw(cdist(x, y)).path
    deviation = np.abs(path[:, 1] - stretch * path[:, 0])
    assert deviation.max() <= 2.0


@pytest.mark.parametrize("cost", [np.zeros((0, 3)), np.zeros(4), np.array([[0.0, np.nan]])])
def test_bad_cost_matrices_are_rejected(cost):
    with pytest.raises(ValueError, match="cost"):
        dtw(cost)

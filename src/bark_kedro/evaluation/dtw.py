"""Dynamic time warping over a cost matrix, with the optimal path.

No maintained DTW library is among the project's dependencies (librosa's ``sequence.dtw`` or
``dtw-python`` would fit), so this is a small numpy implementation. It uses the classic symmetric
step pattern: from ``(i, j)`` the path moves to ``(i + 1, j + 1)``, ``(i + 1, j)`` or
``(i, j + 1)``, every visited cell adding its cost once.

Each row of the accumulated cost is computed at once instead of cell by cell. Entering row ``i``
at column ``k`` costs ``enter[k] = min(D[i-1, k-1], D[i-1, k])``, after which the path can only
move right, so with ``S`` the running sum of ``cost[i]``::

    D[i, j] = min over k <= j of (enter[k] + S[j] - S[k-1])
            = S[j] + cumulative_min(enter[k] - S[k-1])[j]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DTWResult:
    """An optimal alignment: ``path`` is ``(length, 2)`` int pairs ``(i, j)`` from ``(0, 0)`` to
    ``(n - 1, m - 1)``, ``cost`` the sum of the cost matrix along it."""

    path: np.ndarray
    cost: float


def accumulated_cost(cost: np.ndarray) -> np.ndarray:
    """``D[i, j]``: the least total cost of a path from ``(0, 0)`` to ``(i, j)`` (float64)."""
    cost = _check_cost(cost)
    total = np.empty_like(cost)
    total[0] = np.cumsum(cost[0])
    for i in range(1, cost.shape[0]):
        above = total[i - 1]
        enter = above.copy()
        enter[1:] = np.minimum(above[:-1], above[1:])
        running = np.cumsum(cost[i])
        before = np.concatenate(([0.0], running[:-1]))
        total[i] = running + np.minimum.accumulate(enter - before)
    return total


def dtw(cost: np.ndarray) -> DTWResult:
    """Align the rows of ``cost`` (first sequence) with its columns (second sequence).

    Backtracks from the last cell to the predecessor with the least accumulated cost (the
    diagonal on ties). Raises a ValueError for an empty, non-2-D or non-finite ``cost``.
    """
    cost = _check_cost(cost)
    total = accumulated_cost(cost)
    i, j = cost.shape[0] - 1, cost.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
            i, j = min(steps, key=lambda cell: total[cell])  # min keeps the first on ties
        path.append((i, j))
    return DTWResult(path=np.array(path[::-1], dtype=np.int64), cost=float(total[-1, -1]))


def _check_cost(cost: np.ndarray) -> np.ndarray:
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.size == 0:
        raise ValueError(f"cost must be a non-empty 2-D matrix, got shape {cost.shape}")
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost contains NaN or infinite values")
    return cost

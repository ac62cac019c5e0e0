"""Comparing token tables cell by cell (arrays by dtype and value)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """``got`` has ``want``'s columns, dtypes, rows and cells (array cells of the same dtype)."""
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    assert len(got) == len(want)
    for name in want.columns:
        for a, b in zip(got[name], want[name], strict=True):
            if isinstance(b, np.ndarray):
                assert a.dtype == b.dtype, name
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b, name

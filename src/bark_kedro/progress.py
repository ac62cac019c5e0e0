"""Progress bars that read well in a terminal and in a log file."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

# Counts like audio seconds are floats: show them as whole numbers.
_WHOLE_COUNTS = "{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}, {rate_fmt}]"


class _WholeCountBar(tqdm):
    """A bar over a float count (audio seconds) shown against its whole-number total: the
    last fraction of a unit left by rounding the total is filled when the bar closes."""

    def close(self) -> None:
        if self.total is not None and 0 < self.total - self.n < 1:
            self.n = self.total
            self.refresh()
        super().close()


def progress_bar(iterable: Iterable | None = None, *, total: float | None = None,
                 nested: bool = False, disable: bool = False, **options: Any) -> tqdm:
    """A tqdm bar with a whole-number total. A ``nested`` bar (one inside another's loop) is
    shown only on a terminal: in a log file its redraws leave cursor escapes behind."""
    if nested and not sys.stderr.isatty():
        disable = True
    if isinstance(total, float):
        total = math.ceil(total)
        options.setdefault("bar_format", _WHOLE_COUNTS)
        return _WholeCountBar(iterable, total=total, disable=disable, leave=not nested,
                              **options)
    return tqdm(iterable, total=total, disable=disable, leave=not nested, **options)

"""Progress bars: whole-number totals, nested bars kept out of log files."""

from __future__ import annotations

import io

from bark_kedro.progress import progress_bar


def test_float_totals_show_as_whole_numbers():
    out = io.StringIO()
    bar = progress_bar(total=590.17, unit="audio-s", file=out, mininterval=0)
    bar.update(144.49999999999994)
    bar.refresh()
    text = out.getvalue()
    assert bar.total == 591
    assert "144/591 audio-s" in text
    assert "144.4999" not in text
    bar.close()


def test_nested_bar_is_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a TTY
    assert progress_bar(range(3), nested=True).disable
    assert not progress_bar(range(3), nested=False, file=io.StringIO()).disable


def test_a_finished_float_count_closes_at_100_percent():
    out = io.StringIO()
    bar = progress_bar(total=691.3, unit="audio-s", file=out, mininterval=0)
    bar.update(691.3)
    bar.close()
    assert "100%" in out.getvalue().splitlines()[-1] or "100%" in out.getvalue().split("\r")[-1]
    assert bar.n == bar.total == 692


def test_an_unfinished_float_count_is_not_filled():
    bar = progress_bar(total=100.0, file=io.StringIO(), mininterval=0)
    bar.update(40.0)
    bar.close()
    assert bar.n == 40.0

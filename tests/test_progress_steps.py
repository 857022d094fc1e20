"""progress_steps: the reports a dock's worker hands to the GUI, throttled."""

from __future__ import annotations

import threading

import pytest

from napari_video_extract._widgets.worker import progress_steps


def _drain(generator) -> tuple[list, object]:
    """Everything the generator yields, and what it returns."""
    yielded = []
    while True:
        try:
            yielded.append(next(generator))
        except StopIteration as stop:
            return yielded, stop.value


def test_a_burst_of_reports_gives_the_first_and_the_last():
    def call(progress):
        for done in range(1, 1001):
            progress(done, 1000)
        return "result"

    yielded, value = _drain(progress_steps(call, interval=60.0))
    assert value == "result"
    assert yielded[0] == (1, 1000)  # the first report, at once
    assert yielded[-1] == (1000, 1000)
    assert len(yielded) == 2


def test_without_interval_every_spaced_report_is_yielded():
    def call(progress):
        for done in range(1, 6):
            progress(done, 5)
            threading.Event().wait(0.02)
        return 5

    yielded, value = _drain(progress_steps(call, interval=0.0))
    assert yielded == [(k, 5) for k in range(1, 6)]
    assert value == 5


def test_the_newest_report_is_shown_when_the_interval_ends():
    # (2, 3) comes right after (1, 3), then nothing for a second: it must be
    # yielded once the interval is over, not held until (3, 3).
    release = threading.Event()
    seen = []

    def call(progress):
        progress(1, 3)
        progress(2, 3)
        release.wait(10)
        progress(3, 3)
        return None

    generator = progress_steps(call, interval=0.05)
    seen.append(next(generator))
    seen.append(next(generator))  # before (3, 3) is even reported
    release.set()
    rest, _ = _drain(generator)
    assert seen + rest == [(1, 3), (2, 3), (3, 3)]


def test_the_call_s_error_is_raised():
    def call(progress):
        progress(1, 2)
        raise ValueError("bad setting")

    with pytest.raises(ValueError, match="bad setting"):
        _drain(progress_steps(call))

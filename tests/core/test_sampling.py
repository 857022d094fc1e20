"""Sampling definitions: parse_time, interval, head/tail, the frame on screen at t."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import synthetic
from napari_video_extract.core.probe import probe
from napari_video_extract.core.sampling import (
    frames_at,
    head_tail_times,
    interval_times,
    parse_time,
    samples_for,
)

# --------------------------------------------------------------------------- parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12.5", 12.5),
        ("0", 0.0),
        (" 7 ", 7.0),
        (3, 3.0),
        (2.25, 2.25),
        ("1:02.5", 62.5),
        ("01:02", 62.0),
        ("00:00:00", 0.0),
        ("01:02:03.250", 3723.25),
        ("1:00:00", 3600.0),
        ("10:59:59.999", 10 * 3600 + 59 * 60 + 59.999),
    ],
)
def test_parse_time_accepts(text, seconds):
    assert parse_time(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "-1", -0.5, "nan", "inf", "1:60", "1:00:60", "1:2:3:4", "12,5", "1::2", True],
)
def test_parse_time_rejects(text):
    with pytest.raises(ValueError, match="not a time"):
        parse_time(text)


# --------------------------------------------------------------------------- interval


def _reference_interval(start, every, end):
    """t_k = start + k*every for t_k < end, with exact rational arithmetic."""
    s, e, n = Fraction(str(start)), Fraction(str(every)), Fraction(str(end))
    out, k = [], 0
    while s + k * e < n:
        out.append(float(s + k * e))
        k += 1
    return out


@pytest.mark.parametrize(
    ("duration", "every", "start", "end"),
    [
        (10.0, 1.0, 0.0, None),
        (10.0, 2.5, 0.0, None),
        (10.0, 3.0, 1.0, None),
        (10.0, 1.0, 2.0, 5.0),
        (1.0, 0.1, 0.0, None),  # 0.1 * k is inexact in binary
        (0.3, 0.1, 0.0, None),
        (5.0, 0.1, 0.2, 0.7),
        (2.0, 1 / 3, 0.0, None),
        (4.0, 0.04, 0.0, None),
        (7.6, 0.7, 0.0, None),
        (10.0, 1.0, 0.0, 25.0),  # end past the video: capped at the duration
    ],
)
def test_interval_times_definition(duration, every, start, end):
    times = interval_times(duration, every=every, start=start, end=end)
    expected = _reference_interval(start, every, min(duration, end or duration))
    if every == 1 / 3:  # not a decimal: compare with float steps
        expected = [start + k * every for k in range(6)]
    assert len(times) == len(expected)
    np.testing.assert_allclose(times, expected, atol=1e-9)
    assert np.all(np.diff(times) > 0)


def test_interval_first_sample_is_start_and_last_is_before_end():
    times = interval_times(10.0, every=2.0, start=1.0, end=9.0)
    assert times.tolist() == [1.0, 3.0, 5.0, 7.0]  # 9.0 is not < 9.0


@pytest.mark.parametrize("every", [0.0, -1.0, float("nan"), float("inf")])
def test_interval_rejects_bad_every(every):
    with pytest.raises(ValueError, match="--every"):
        interval_times(10.0, every=every)


def test_interval_rejects_start_after_end():
    with pytest.raises(ValueError, match="--start"):
        interval_times(10.0, every=1.0, start=5.0, end=3.0)
    with pytest.raises(ValueError, match="--start"):
        interval_times(10.0, every=1.0, start=4.0, end=4.0)


# --------------------------------------------------------------------------- head / tail


def test_head_tail_separate_windows():
    times = head_tail_times(10.0, head=2.0, tail=3.0, every=1.0)
    assert times.tolist() == [0.0, 1.0, 7.0, 8.0, 9.0]


def test_head_tail_tail_window_starts_at_duration_minus_tail():
    times = head_tail_times(10.5, head=0.0, tail=2.0, every=1.0)
    assert times.tolist() == [8.5, 9.5]


def test_head_tail_overlap_is_the_union_without_duplicates():
    times = head_tail_times(10.0, head=6.0, tail=6.0, every=1.0)
    assert times.tolist() == [float(k) for k in range(10)]
    shifted = head_tail_times(10.5, head=6.0, tail=6.0, every=1.0)
    expected = sorted({*range(6), *(4.5 + k for k in range(6))})
    np.testing.assert_allclose(shifted, expected)
    assert len(set(shifted.tolist())) == len(shifted)


def test_head_tail_float_overlap_is_not_doubled():
    # 0.1-steps from 0 and from duration - tail land on the same instants,
    # up to rounding errors; each instant must appear once.
    times = head_tail_times(1.0, head=0.7, tail=0.6, every=0.1)
    np.testing.assert_allclose(times, np.arange(10) / 10, atol=1e-9)


def test_video_shorter_than_head_gives_the_whole_video():
    times = head_tail_times(3.0, head=10.0, tail=0.0, every=1.0)
    assert times.tolist() == [0.0, 1.0, 2.0]
    both = head_tail_times(3.0, head=10.0, tail=10.0, every=1.0)
    assert both.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("head", "tail", "every"), [(0, 0, 1), (-1, 2, 1), (1, -1, 1), (2, 2, 0), (2, 2, -1)]
)
def test_head_tail_rejects(head, tail, every):
    with pytest.raises(ValueError):
        head_tail_times(10.0, head=head, tail=tail, every=every)


# --------------------------------------------------------------------------- frame at t


def _reference_frame_at(frame_times, t):
    """The last frame whose time is <= t (frame 0 before the first)."""
    candidates = [i for i, ft in enumerate(frame_times) if ft <= t + 1e-9]
    return candidates[-1] if candidates else 0


def test_frames_at_is_the_frame_on_screen():
    ft = np.array([0.0, 0.04, 0.08, 0.5, 0.52, 1.0])
    times = np.array([0.0, 0.039, 0.04, 0.079, 0.3, 0.5, 0.51, 0.999, 1.0, 5.0])
    assert frames_at(ft, times).tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 5, 5]


def test_frames_at_exact_time_after_float_accumulation():
    # 0.1 * 3 = 0.30000000000000004 and 3 * 0.1 != 0.3: a frame at 0.3 must
    # still be "on screen" at the sample time 0.1 + 0.1 + 0.1.
    ft = np.arange(0, 100) / 100  # 100 fps
    t = 0.1 + 0.1 + 0.1 - 2e-16
    assert frames_at(ft, np.array([t]))[0] == 30
    times = interval_times(1.0, every=0.1)
    assert frames_at(ft, times).tolist() == list(range(0, 100, 10))


def test_frames_at_on_real_vfr_timestamps(vfr_video):
    path, true_times = vfr_video
    info = probe(path)
    times = interval_times(info.duration, every=0.13)
    got = frames_at(info.frame_times, times).tolist()
    assert got == [_reference_frame_at(true_times, t) for t in times]
    # In the slow stretch (0.2 s per frame) several instants share a frame,
    # in the fast one (0.02 s) frames are skipped: both happen here.
    assert len(set(got)) < len(got)
    assert max(np.diff(got)) > 1


def test_samples_for_takes_each_frame_once_for_its_first_instant():
    ft = np.array([0.0, 1.0, 2.0])
    samples = samples_for(ft, np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.5]))
    assert [(s.time, s.frame) for s in samples] == [(0.0, 0), (1.0, 1), (2.5, 2)]


def test_head_tail_on_vfr_frames(vfr_video):
    path, true_times = vfr_video
    info = probe(path)
    times = head_tail_times(info.duration, head=1.0, tail=1.0, every=0.25)
    samples = samples_for(info.frame_times, times)
    frames = [s.frame for s in samples]
    assert frames == sorted(set(frames))
    expected = []
    for t in times:
        f = _reference_frame_at(true_times, t)
        if f not in expected:
            expected.append(f)
    assert frames == expected
    assert len(true_times) <= synthetic.MAX_INDEX

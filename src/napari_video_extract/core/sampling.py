"""Sampling plans: which instants to take stills at, and which frame shows each.

Definitions (also in the README):

* **interval**: ``t_k = start + k * every`` for every ``k >= 0`` with
  ``t_k < end`` (``start`` defaults to 0, ``end`` to the duration). Times are
  seconds relative to the first frame of the video.
* **head/tail**: every ``every`` seconds in ``[0, head)`` and in
  ``[duration - tail, duration)``; where the two overlap, their union, and no
  frame is ever taken twice.
* **the frame for time t** is the frame on screen at ``t``: the last frame
  whose presentation time is ``<= t``. This holds for variable frame rate
  video and for containers whose start time is not 0, since all times are
  relative to the first frame's real timestamp.

Time values are accepted as seconds (``12.5``) or ``[HH:]MM:SS[.mmm]``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Sample",
    "frames_at",
    "head_tail_times",
    "interval_times",
    "parse_time",
    "samples_for",
]

_CLOCK_RE = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")

#: Tolerance for float time arithmetic (a microsecond): ``t_k < end`` and
#: "pts <= t" comparisons must not flip because 0.1 * 3 != 0.3.
EPS = 1e-6


def parse_time(value: str | float | int) -> float:
    """Parse a time as seconds.

    Parameters
    ----------
    value : str or float
        ``12.5``, ``"12.5"``, ``"1:02.5"`` (MM:SS.mmm) or ``"01:02:03.250"``.

    Returns
    -------
    float
        Seconds, finite and >= 0.

    Raises
    ------
    ValueError
        For anything else (negative, NaN, malformed, minutes/seconds >= 60).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        m = _CLOCK_RE.match(text)
        if m:
            hours = int(m.group(1) or 0)
            minutes = int(m.group(2))
            secs = float(m.group(3))
            if minutes >= 60 or secs >= 60:
                raise ValueError(f"not a time: {value!r} (minutes and seconds must be < 60)")
            seconds = hours * 3600 + minutes * 60 + secs
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"not a time: {value!r} (use seconds like 12.5 or HH:MM:SS.mmm)"
                ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a time: {value!r} (must be a finite number >= 0)")
    return seconds


def interval_times(
    duration: float, *, every: float, start: float = 0.0, end: float | None = None
) -> np.ndarray:
    """Sample times ``start + k * every`` for ``t < end``.

    Parameters
    ----------
    duration : float
        Video duration in seconds (used when ``end`` is None, and as a cap).
    every : float
        Seconds between samples, > 0.
    start, end : float
        Window in seconds relative to the first frame.

    Returns
    -------
    numpy.ndarray of float64

    Raises
    ------
    ValueError
        ``every <= 0``, or ``start >= end``.
    """
    if not every > 0 or not math.isfinite(every):
        raise ValueError(f"--every must be a positive number of seconds, got {every!r}")
    end = duration if end is None else min(end, duration)
    if start < 0:
        raise ValueError(f"--start must be >= 0, got {start!r}")
    if end is not None and start >= end:
        raise ValueError(f"--start ({start:g} s) must be before --end ({end:g} s)")
    count = max(0, math.ceil((end - start - EPS) / every))
    times = start + every * np.arange(count, dtype=np.float64)
    return times[times < end - EPS] if count else times


def head_tail_times(
    duration: float, *, head: float = 0.0, tail: float = 0.0, every: float = 1.0
) -> np.ndarray:
    """Sample times in the first ``head`` and the last ``tail`` seconds.

    Samples run every ``every`` seconds from 0 in ``[0, head)`` and from
    ``duration - tail`` in ``[duration - tail, duration)``; both windows are
    clipped to the video, and the union is returned sorted, without repeats.
    A video shorter than ``head`` simply gives samples over its whole length.

    Raises
    ------
    ValueError
        ``every <= 0``, or neither ``head`` nor ``tail`` is positive.
    """
    if not every > 0 or not math.isfinite(every):
        raise ValueError(f"--every must be a positive number of seconds, got {every!r}")
    if head < 0 or tail < 0:
        raise ValueError("--head and --tail must be >= 0")
    if head <= 0 and tail <= 0:
        raise ValueError("give --head and/or --tail (seconds), at least one > 0")
    parts = []
    if head > 0:
        parts.append(interval_times(duration, every=every, start=0.0, end=min(head, duration)))
    tail_start = max(0.0, duration - tail)
    if tail > 0 and tail_start < duration:  # a tail below float resolution is empty
        parts.append(interval_times(duration, every=every, start=tail_start, end=duration))
    times = np.concatenate(parts) if parts else np.empty(0)
    times.sort()
    # Drop instants closer than EPS (same instant reached from both windows).
    if len(times):
        times = times[np.concatenate([[True], np.diff(times) > EPS])]
    return times


def frames_at(frame_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each time (last frame with pts <= t).

    Times before the first frame map to frame 0.
    """
    idx = np.searchsorted(frame_times, np.asarray(times, dtype=np.float64) + EPS, side="right") - 1
    return np.clip(idx, 0, max(len(frame_times) - 1, 0)).astype(np.int64)


@dataclass(frozen=True)
class Sample:
    """One planned still: the requested instant and the frame that shows it."""

    time: float  # requested instant (seconds from the first frame)
    frame: int  # index of the frame on screen at that instant


def samples_for(frame_times: np.ndarray, times: np.ndarray) -> list[Sample]:
    """Pair each requested time with its frame; one sample per distinct frame.

    When several instants fall on the same frame (``every`` shorter than a
    frame, or a static VFR stretch), the frame is taken once, for the first
    instant.
    """
    frames = frames_at(frame_times, times)
    seen: set[int] = set()
    out = []
    for t, f in zip(times.tolist(), frames.tolist(), strict=True):
        if f not in seen:
            seen.add(f)
            out.append(Sample(time=float(t), frame=int(f)))
    return out

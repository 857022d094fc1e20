"""What to sample, as a user asks for it: :class:`Interval` and :class:`HeadTail`.

A spec checks its settings when it is built (the CLI and the widgets only
build one, so the checks live here once) and gives the instants to take
stills at for a probed video (:mod:`.sampling` does the arithmetic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_video_extract.core.errors import SettingError
from napari_video_extract.core.sampling import head_tail_times, interval_times

if TYPE_CHECKING:
    from napari_video_extract.core.probe import VideoInfo

__all__ = ["HeadTail", "Interval", "SamplingSpec"]


def _check_every(every: float) -> None:
    if not (every > 0 and math.isfinite(every)):
        raise SettingError(
            "{every} must be a positive number of seconds, got {value}",
            settings=["every"],
            value=repr(every),
        )


@dataclass(frozen=True)
class Interval:
    """One still every ``every`` seconds in ``[start, end)``."""

    every: float
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        # One place for these checks: the CLI and the widgets only build a spec.
        _check_every(self.every)
        if self.start < 0:
            raise SettingError(
                "{start} must be >= 0, got {value}", settings=["start"], value=f"{self.start:g}"
            )
        if self.end is not None and self.start >= self.end:
            raise SettingError(
                "{start} ({a} s) must be before {end} ({b} s)",
                settings=["start", "end"],
                a=f"{self.start:g}",
                b=f"{self.end:g}",
            )

    def times(self, info: VideoInfo) -> np.ndarray:
        if self.start >= info.duration:
            raise SettingError(
                "{start} ({a} s) is past the end of the video ({b} s)",
                settings=["start"],
                a=f"{self.start:g}",
                b=f"{info.duration:.3f}",
            )
        return interval_times(info.duration, every=self.every, start=self.start, end=self.end)


@dataclass(frozen=True)
class HeadTail:
    """Stills every ``every`` seconds in the first ``head`` and last ``tail`` seconds."""

    head: float = 0.0
    tail: float = 0.0
    every: float = 1.0

    def __post_init__(self) -> None:
        _check_every(self.every)
        if self.head < 0 or self.tail < 0:
            raise SettingError("{head} and {tail} must be >= 0", settings=["head", "tail"])
        if self.head <= 0 and self.tail <= 0:
            raise SettingError(
                "give {head} and/or {tail} (seconds), at least one > 0", settings=["head", "tail"]
            )

    def times(self, info: VideoInfo) -> np.ndarray:
        return head_tail_times(info.duration, head=self.head, tail=self.tail, every=self.every)


SamplingSpec = Interval | HeadTail

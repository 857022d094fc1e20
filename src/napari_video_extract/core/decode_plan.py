"""Plan the decoding runs that produce chosen frames at the least cost.

Random access costs "start a process + decode from the previous keyframe".
Sequential decoding costs "decode every frame in between". For each wanted
frame the planner picks the cheaper of continuing the current decoding run or
starting a new run at the frame's keyframe (a classic keyframe-aware plan);
runs are then split at keyframes so that all cores work, and run in parallel
(:func:`~napari_video_extract.core.decode.decode_frames`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from napari_video_extract.core.probe import VideoInfo

__all__ = [
    "DECODE_PIXELS_PER_SECOND",
    "PROCESS_START_SECONDS",
    "Segment",
    "plan_segments",
    "startup_frames",
]

#: Seconds to start an ffmpeg process and open the file (measured ~0.05 s).
PROCESS_START_SECONDS = 0.06
#: Decoding throughput in pixels per second on one core-pair (720p H.264 ~1400 fps).
DECODE_PIXELS_PER_SECOND = 1.2e9


@dataclass(frozen=True)
class Segment:
    """One decoding run: start at keyframe ``start``, emit ``targets``."""

    start: int
    targets: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.targets[-1]

    def work(self, startup_frames: float) -> float:
        """Estimated cost in decoded-frame units."""
        return startup_frames + (self.end - self.start + 1)


def startup_frames(info: VideoInfo) -> float:
    """Cost of starting a decoding run, in frames of this video."""
    pixels = max(info.width * info.height, 1)
    return PROCESS_START_SECONDS * DECODE_PIXELS_PER_SECOND / pixels


def plan_segments(info: VideoInfo, indices: Iterable[int], *, workers: int = 1) -> list[Segment]:
    """Plan decoding runs that produce exactly ``indices`` at the least cost.

    Parameters
    ----------
    info : VideoInfo
        The probed video (frame timestamps and keyframes).
    indices : iterable of int
        Wanted frame indices (any order, duplicates ignored).
    workers : int
        Runs that can go in parallel; long runs are split at keyframes so that
        there are at least ``2 * workers`` runs of similar cost when possible.

    Returns
    -------
    list of Segment
        Sorted by start, non-overlapping, together holding every index once.
    """
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return []
    if wanted[0] < 0 or wanted[-1] >= info.frame_count:
        raise ValueError(f"frame index out of range 0..{info.frame_count - 1}")
    start_cost = startup_frames(info)
    groups: list[list[int]] = []  # [start, target, target, ...]
    for i in wanted:
        k = info.keyframe_before(i)
        if groups:
            last = groups[-1][-1]
            if k <= last or (i - last) <= start_cost + (i - k):
                groups[-1].append(i)
                continue
        groups.append([k, i])
    segments = [Segment(g[0], tuple(g[1:])) for g in groups]
    if workers > 1:
        segments = _split_for_parallelism(info, segments, workers, start_cost)
    return segments


def _split_for_parallelism(
    info: VideoInfo, segments: list[Segment], workers: int, start_cost: float
) -> list[Segment]:
    """Split long runs at keyframes so ``workers`` processes share the work."""
    total = sum(s.work(start_cost) for s in segments)
    # Splitting costs one process start; only worth it for real work.
    target = max(total / (2 * workers), 8 * start_cost)
    out: list[Segment] = []
    for seg in segments:
        if seg.work(start_cost) <= 1.5 * target:
            out.append(seg)
            continue
        current_start = seg.start
        current: list[int] = []
        for i in seg.targets:
            k = info.keyframe_before(i)
            if current and k > current[-1] and (i - current_start) > target:
                out.append(Segment(current_start, tuple(current)))
                current_start, current = k, []
            current.append(i)
        out.append(Segment(current_start, tuple(current)))
    return out

"""Plan the decoding runs that produce chosen frames at the least cost.

Random access costs "start a decoder + decode from the previous keyframe".
Sequential decoding costs "decode every frame in between". For each wanted
frame the planner picks the cheaper of continuing the current decoding run or
starting a new run at the frame's keyframe (a classic keyframe-aware plan);
runs are then split at keyframes into pieces small enough that all cores stay
busy to the end, and run in parallel, longest first
(:func:`~napari_video_extract.core.decode.decode_frames`, :func:`longest_first`).

The cost counts only the frames that will really be decoded
(:class:`DecodeCost`): a wanted frame costs one frame, a frame on the way to
it costs the fraction of frames that are references when the decoder skips
the others (PyAV, :mod:`.reference_frames`), one frame when it cannot (the
ffmpeg executable). Starting a run costs a process start for the executable;
for PyAV, whose worker keeps its file open between runs, a seek and the
reference frames the decoder has already decoded past the previous run's
last target when it gives that target out (its reorder delay).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from napari_video_extract.core.probe import VideoInfo

__all__ = [
    "DECODE_PIXELS_PER_SECOND",
    "EXACT_SEEK_CONTAINERS",
    "PROCESS_START_SECONDS",
    "PYAV_INEXACT_SEEK_START_SECONDS",
    "PYAV_START_SECONDS",
    "DecodeCost",
    "Segment",
    "decode_cost",
    "longest_first",
    "plan_segments",
    "startup_frames",
]

#: Seconds to start an ffmpeg process and open the file (measured ~0.05 s).
PROCESS_START_SECONDS = 0.06
#: Seconds a new PyAV run costs over going on decoding (measured on 720p
#: H.264: a seek in the open file takes ~0.05 ms; what is lost are the one or
#: two reference frames decoded ahead of the previous run's last target,
#: ~2-3 frames' worth). Opening the file (~5-10 ms) happens once per worker.
PYAV_START_SECONDS = 0.0025
#: Seconds a new PyAV run costs in the containers without an index (MPEG-PS/TS,
#: FLV...): seeks there search by timestamp and often land after the keyframe,
#: so a first try misses and the next starts earlier (city_cc0_mpeg2.mpg, 4
#: stills: 2 runs and 122 frames at 0.015 s, 8 runs and 257 frames at 0.0025).
PYAV_INEXACT_SEEK_START_SECONDS = 0.015
#: Demuxers (PyAV's ``container.format.name``) whose seeks go to the indexed
#: keyframe itself: MP4/MOV, Matroska/WebM (cues) and AVI (idx1).
EXACT_SEEK_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})
#: A run is split at keyframes until it is at most 1/(this x workers) of the
#: work, so the last runs are short and no core idles long at the end.
PIECES_PER_WORKER = 8
#: Decoding throughput in pixels per second on one core-pair (720p H.264 ~1400 fps).
DECODE_PIXELS_PER_SECOND = 1.2e9


@dataclass(frozen=True)
class DecodeCost:
    """What decoding costs, in decoded-frame units of one video.

    Attributes
    ----------
    startup : float
        Starting a decoding run (process or open + seek).
    passing : float
        A frame decoded only on the way to a wanted one: 1 when every frame
        is decoded, the reference fraction when non-reference frames are
        skipped.
    """

    startup: float
    passing: float = 1.0

    def run(self, start: int, targets: tuple[int, ...]) -> float:
        """Estimated cost of a run from ``start`` giving ``targets``."""
        span = targets[-1] - start + 1
        return self.startup + self.passing * (span - len(targets)) + len(targets)


def decode_cost(info: VideoInfo, backend: str = "ffmpeg") -> DecodeCost:
    """The cost model of ``backend`` (``'pyav'`` or ``'ffmpeg'``) for this video.

    For PyAV, opens the file to measure the reference fraction (once per file
    and process, see :func:`~napari_video_extract.core.reference_frames.reference_fraction`).
    """
    if backend != "pyav":
        return DecodeCost(startup_frames(info))
    from napari_video_extract.core.reference_frames import reference_fraction

    pixels = max(info.width * info.height, 1)
    exact = info.container in EXACT_SEEK_CONTAINERS
    seconds = PYAV_START_SECONDS if exact else PYAV_INEXACT_SEEK_START_SECONDS
    startup = seconds * DECODE_PIXELS_PER_SECOND / pixels
    return DecodeCost(startup, passing=reference_fraction(info))


@dataclass(frozen=True)
class Segment:
    """One decoding run: start at keyframe ``start``, emit ``targets``."""

    start: int
    targets: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.targets[-1]

    def work(self, cost: DecodeCost | float) -> float:
        """Estimated cost in decoded-frame units (a bare number: startup, all frames decoded)."""
        if not isinstance(cost, DecodeCost):
            cost = DecodeCost(float(cost))
        return cost.run(self.start, self.targets)


def startup_frames(info: VideoInfo) -> float:
    """Cost of starting a decoding run, in frames of this video."""
    pixels = max(info.width * info.height, 1)
    return PROCESS_START_SECONDS * DECODE_PIXELS_PER_SECOND / pixels


def plan_segments(
    info: VideoInfo,
    indices: Iterable[int],
    *,
    workers: int = 1,
    cost: DecodeCost | None = None,
) -> list[Segment]:
    """Plan decoding runs that produce exactly ``indices`` at the least cost.

    Parameters
    ----------
    info : VideoInfo
        The probed video (frame timestamps and keyframes).
    indices : iterable of int
        Wanted frame indices (any order, duplicates ignored).
    workers : int
        Runs that can go in parallel; long runs are split at keyframes into
        pieces of at most ``1 / (PIECES_PER_WORKER * workers)`` of the work
        when possible (worth it while a piece is several run starts long).
    cost : DecodeCost, optional
        The decoder's cost model (default: the ffmpeg executable's,
        :func:`decode_cost`).

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
    cost = cost or decode_cost(info)
    starts = [info.keyframe_before(i) for i in wanted]
    groups: list[list[int]] = []  # [start, target, target, ...]
    for i, k in zip(wanted, starts, strict=True):
        if groups:
            last = groups[-1][-1]
            # Both ways decode frame i and pass keyframe k..i; continuing also
            # passes the frames from ``last`` to ``k``, a new run starts.
            if k <= last or cost.passing * (k - last - 1) <= cost.startup:
                groups[-1].append(i)
                continue
        groups.append([k, i])
    segments = [Segment(g[0], tuple(g[1:])) for g in groups]
    if workers > 1:
        segments = _split_for_parallelism(info, segments, workers, cost)
    return segments


def _split_for_parallelism(
    info: VideoInfo, segments: list[Segment], workers: int, cost: DecodeCost
) -> list[Segment]:
    """Split long runs at keyframes so ``workers`` decoders share the work."""
    total = sum(s.work(cost) for s in segments)
    # Splitting costs one decoder start (and saves the frames the run would
    # have passed to reach the keyframe); only worth it for real work.
    target = max(total / (PIECES_PER_WORKER * workers), 8 * cost.startup)
    out: list[Segment] = []
    for seg in segments:
        if seg.work(cost) <= 1.5 * target:
            out.append(seg)
            continue
        current_start = seg.start
        current: list[int] = []
        for i in seg.targets:
            k = info.keyframe_before(i)
            n = len(current) + 1  # the targets of the run if it goes on to i
            work = cost.startup + cost.passing * (i - current_start + 1 - n) + n
            if current and k > current[-1] and work > target:
                out.append(Segment(current_start, tuple(current)))
                current_start, current = k, []
            current.append(i)
        out.append(Segment(current_start, tuple(current)))
    return out


def longest_first(segments: list[Segment], cost: DecodeCost | float) -> list[Segment]:
    """``segments`` in the order parallel decoders should take them: longest first.

    Each free decoder takes the next run; giving out the long runs first
    leaves the short ones for the end, so the decoders finish together
    (longest-processing-time scheduling) instead of one decoding a long run
    alone while the others have nothing left.
    """
    return sorted(segments, key=lambda s: (-s.work(cost), s.start))

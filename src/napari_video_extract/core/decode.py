"""Decode chosen frames of a video, exactly and as fast as the decoder allows.

Every frame is identified by its presentation timestamp (from
:func:`~napari_video_extract.core.probe.probe`), by the frame sources of
:mod:`.frame_source`. The runs are planned by :mod:`.decode_plan` and run in
parallel threads, one decoder each. Only the time a reader waits for its
decoder counts towards the stall limit; when the consumer stops (closed
generator, an error in its callback) every running decoder is stopped at once.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from napari_video_extract.core.decode_plan import (
    DECODE_PIXELS_PER_SECOND,
    PROCESS_START_SECONDS,
    Segment,
    decode_cost,
    longest_first,
    plan_segments,
    startup_frames,
)
from napari_video_extract.core.errors import DecodeError, VideoOpenError
from napari_video_extract.core.ffmpeg_source import FrameStream
from napari_video_extract.core.frame_source import STALL_TIMEOUT_SECONDS, DecodedFrame, FrameSource
from napari_video_extract.core.probe import VideoInfo
from napari_video_extract.core.pyav_source import PyAVStream, pyav_attempts, pyav_available
from napari_video_extract.core.rgb_frames import pyav_is_exact

__all__ = [
    "BACKENDS",
    "DECODE_PIXELS_PER_SECOND",
    "PROCESS_START_SECONDS",
    "STALL_TIMEOUT_SECONDS",
    "DecodeStats",
    "DecodedFrame",
    "FrameStream",
    "Segment",
    "choose_backend",
    "decode_frames",
    "plan_segments",
    "startup_frames",
]


#: Decoders :func:`decode_frames` can use (see :func:`choose_backend`).
BACKENDS = ("auto", "pyav", "ffmpeg")


def choose_backend(info: VideoInfo, backend: str = "auto") -> str:
    """The frame source to decode ``info`` with: ``'pyav'`` or ``'ffmpeg'``.

    ``'auto'`` is PyAV (in process, reference-only decoding) when it is
    installed and gives the ffmpeg executable's pixels for this video
    (:func:`~napari_video_extract.core.rgb_frames.pyav_is_exact`), else the
    ffmpeg executable.

    Raises
    ------
    ValueError
        Unknown ``backend``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        return "pyav" if pyav_available() and pyav_is_exact(info) else "ffmpeg"
    return backend


def _attempts(info: VideoInfo, backend: str, start: int) -> list[tuple[bool | str, bool]]:
    """``(seek, skip)`` tries for a run at ``start``, cheapest first.

    A seek may land after the keyframe (timestamp-searched containers); the
    last resort decodes from the beginning and, for PyAV, without skipping
    anything (whatever went wrong, a full decode is what stills are checked
    against).
    """
    if backend == "ffmpeg":
        seeks: list[bool | str] = ["fast", "exact", False] if start > 0 else [False]
        if not info.seeks_by_index:
            seeks = [s for s in seeks if s != "fast"]
        return [(seek, False) for seek in seeks]
    return pyav_attempts(info, start)


class _Sources:
    """The frame sources of one worker thread: a PyAV file stays open between runs.

    Opening a file in PyAV reads its index and stream parameters again (a
    large part of a short run on a long MP4); a seek in the open file is what
    the next run needs.
    """

    def __init__(self) -> None:
        self._kept: PyAVStream | None = None

    def get(
        self,
        info: VideoInfo,
        backend: str,
        start: int,
        targets: tuple[int, ...],
        *,
        seek: bool | str,
        skip: bool,
        threads: int | None,
        stall_timeout: float | None,
    ) -> FrameSource:
        kept, self._kept = self._kept, None
        if kept is not None and skip and backend == "pyav":
            try:
                kept.restart(start, targets, first=targets[0], seek=seek)
                return kept
            except DecodeError:
                pass  # reopen below
        if kept is not None:
            kept.close()
        return _open_source(
            info,
            backend,
            start,
            targets,
            seek=seek,
            skip=skip,
            threads=threads,
            stall_timeout=stall_timeout,
        )

    def release(self, source: FrameSource, *, reusable: bool) -> None:
        """Keep ``source`` for the next run if it can seek again, else close it."""
        if reusable and isinstance(source, PyAVStream) and source.skips_frames:
            if self._kept is not None and self._kept is not source:
                self._kept.close()
            self._kept = source
        else:
            source.close()

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None


def _open_source(
    info: VideoInfo,
    backend: str,
    start: int,
    targets: tuple[int, ...],
    *,
    seek: bool | str,
    skip: bool,
    threads: int | None,
    stall_timeout: float | None,
) -> FrameSource:
    if backend == "pyav":
        return PyAVStream(
            info,
            start,
            targets,
            seek=seek,
            threads=threads,
            skip=skip,
            stall_timeout=stall_timeout,
        )
    return FrameStream(
        info, start, targets, seek=seek, threads=threads, stall_timeout=stall_timeout
    )


class _ActiveStreams:
    """The decoders a :func:`decode_frames` call runs, so its consumer can stop them at once."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._streams: set[FrameSource] = set()

    def add(self, stream: FrameSource) -> None:
        with self._lock:
            self._streams.add(stream)
            if self._stop.is_set():
                stream.abort()

    def discard(self, stream: FrameSource) -> None:
        with self._lock:
            self._streams.discard(stream)

    def abort_all(self) -> None:
        with self._lock:
            for stream in self._streams:
                stream.abort()


@dataclass
class DecodeStats:
    """What the decoding runs of a :func:`decode_frames` call really did.

    Attributes
    ----------
    runs : int
        Decoding runs started (one per seek: an ffmpeg process, or a PyAV
        decoder).
    frames_decoded : int
        Frames the decoders really produced: the wanted frames and every
        frame decoded on the way to them (frames skipped as non-reference
        are not counted).
    backend : str
        The frame source used (``'pyav'`` or ``'ffmpeg'``; empty before the
        first run).
    """

    runs: int = 0
    frames_decoded: int = 0
    backend: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_run(self, frames_decoded: int) -> None:
        with self._lock:
            self.runs += 1
            self.frames_decoded += frames_decoded


def _run_segment(
    info: VideoInfo,
    seg: Segment,
    emit: Callable[[DecodedFrame], None],
    cancel: threading.Event,
    stop: threading.Event,
    threads: int | None = None,
    *,
    backend: str = "ffmpeg",
    active: _ActiveStreams | None = None,
    counts: DecodeStats | None = None,
    stall_timeout: float | None = None,
    sources: _Sources | None = None,
) -> tuple[set[int], str]:
    """Decode one segment; fall back to an earlier start, then to decoding
    from the start, if a seek missed frames (inexact seeking in some
    containers). Returns the missing targets and the decoder's last error.
    Stops early when ``cancel`` (the user) or ``stop`` (the consumer went
    away) is set."""
    wanted = set(seg.targets)
    error = ""
    sources = sources or _Sources()
    for seek, skip in _attempts(info, backend, seg.start):
        if cancel.is_set() or stop.is_set():
            return wanted, "cancelled"
        try:
            stream = sources.get(
                info,
                backend,
                seg.start,
                tuple(sorted(wanted)),
                seek=seek,
                skip=skip,
                threads=threads,
                stall_timeout=stall_timeout,
            )
        except (DecodeError, VideoOpenError) as exc:
            error = exc.reason
            continue
        if active is not None:
            active.add(stream)
        before = stream.frames_decoded  # a reused source counts on
        failed = True
        try:
            for frame in stream:
                if cancel.is_set() or stop.is_set():
                    return wanted, "cancelled"
                if frame.index in wanted:
                    wanted.discard(frame.index)
                    emit(frame)
                if not wanted:
                    break
            error = stream.error_text()
            failed = bool(wanted)
        except DecodeError as exc:
            error = exc.reason
        finally:
            if active is not None:
                active.discard(stream)
            if counts is not None:
                counts.add_run(stream.frames_decoded - before)
            sources.release(stream, reusable=not failed)
        if not wanted:
            break
    return wanted, error


def decode_frames(
    info: VideoInfo,
    indices: Iterable[int],
    *,
    workers: int | None = None,
    cancel: threading.Event | None = None,
    missing: list[int] | None = None,
    reasons: list[str] | None = None,
    stats: DecodeStats | None = None,
    stall_timeout: float | None = None,
    backend: str = "auto",
) -> Iterator[DecodedFrame]:
    """Decode the frames ``indices`` of a probed video.

    Frames are yielded as soon as they are decoded, **not** necessarily in
    index order when ``workers > 1`` (runs decode in parallel). At most a few
    frames per worker are held in memory, whatever the video's length.

    Parameters
    ----------
    info : VideoInfo
        From :func:`~napari_video_extract.core.probe.probe`.
    indices : iterable of int
        Frame indices to decode.
    workers : int, optional
        Parallel decoding processes (default: number of CPUs, at most 4).
    cancel : threading.Event, optional
        Set it to stop early; the generator then returns quietly.
    missing : list, optional
        Receives the indices that could not be decoded (damaged video).
    reasons : list, optional
        Receives why they could not (the decoders' last errors, each once).
    stats : DecodeStats, optional
        Receives the runs started and the frames really decoded.
    stall_timeout : float, optional
        Seconds a decoder may keep its run waiting before it is killed as
        hung (default :data:`STALL_TIMEOUT_SECONDS`); a slow consumer does
        not count. (PyAV decodes in process: there it bounds opening the
        file and each read.)
    backend : {'auto', 'pyav', 'ffmpeg'}, optional
        The frame source (see :func:`choose_backend`). Both give the same
        pixels and follow the same plan; PyAV skips the non-reference frames
        on the way to the wanted ones.

    Yields
    ------
    DecodedFrame

    Raises
    ------
    DecodeError
        Not a single wanted frame could be decoded.
    """
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    workers = max(1, int(workers))
    cancel = cancel or threading.Event()
    # Read here, at call time: the module's value is the default (tests lower it).
    stall_timeout = STALL_TIMEOUT_SECONDS if stall_timeout is None else float(stall_timeout)
    backend = choose_backend(info, backend)
    if stats is not None:
        stats.backend = backend
    cost = decode_cost(info, backend)
    segments = plan_segments(info, indices, workers=workers, cost=cost)
    if not segments:
        return
    out: queue.Queue = queue.Queue(maxsize=4 * workers)
    todo: queue.Queue[Segment] = queue.Queue()
    parallel = min(workers, len(segments))
    # One decoder goes in index order; several take the longest runs first.
    for seg in longest_first(segments, cost) if parallel > 1 else segments:
        todo.put(seg)
    stop = threading.Event()
    active = _ActiveStreams(stop)
    failures: list[tuple[set[int], str]] = []

    def put(item: object) -> bool:
        """Hand ``item`` to the consumer; False once the consumer went away."""
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        sources = _Sources()
        try:
            while not stop.is_set() and not cancel.is_set():
                try:
                    seg = todo.get_nowait()
                except queue.Empty:
                    return
                lost, error = _run_segment(
                    info,
                    seg,
                    put,
                    cancel,
                    stop,
                    threads_per_decoder,
                    backend=backend,
                    active=active,
                    counts=stats,
                    stall_timeout=stall_timeout,
                    sources=sources,
                )
                if lost:
                    failures.append((lost, error))
        except BaseException as exc:  # surfaced to the consumer
            failures.append((set(), f"{type(exc).__name__}: {exc}"))
        finally:
            sources.close()
            put(_DONE)

    # Several decoders at once share the cores: one thread each avoids the
    # overhead of frame threading (measured ~8 % faster on 2 cores); a lone
    # decoder keeps the default of one thread per core.
    threads_per_decoder = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    for t in threads:
        t.start()
    produced = 0
    finished = 0
    try:
        while finished < len(threads):
            item = out.get()
            if item is _DONE:
                finished += 1
                continue
            produced += 1
            yield item
    finally:
        # The consumer is done (or gone: closed generator, error in its
        # callback): stop the decoders now rather than letting them finish.
        stop.set()
        active.abort_all()
        for t in threads:
            t.join(timeout=5)
    if cancel.is_set():
        return
    lost_all = sorted(set().union(*(lost for lost, _ in failures))) if failures else []
    if missing is not None:
        missing.extend(lost_all)
    if reasons is not None:
        reasons.extend(dict.fromkeys(err for lost, err in failures if lost and err))
    if failures and produced == 0:
        reason = next((err for _, err in failures if err), "") or "no frame could be decoded"
        raise DecodeError(info.path, f"decoding failed: {reason}")


_DONE = object()

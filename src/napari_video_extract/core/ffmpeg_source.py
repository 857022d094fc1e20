"""A frame source on the ffmpeg executable (imageio-ffmpeg), one process per run.

An ffmpeg process starts at a keyframe (input ``-ss`` to just before it,
with ``-copyts`` so timestamps stay absolute), decodes forward, and a
``select`` filter lets through only the frames whose timestamp falls in the
wanted frames' windows, so unneeded frames never cross the pipe. ffmpeg's
per-frame statistics, on a pipe of their own (never its log, where the
file's metadata is printed too), give the timestamp of each frame that does,
and we check it: a frame is never taken for another.

A keyframe is sought only once PyAV has checked that it decodes as one
(:mod:`.seek_points`: ffmpeg cannot show the decoder's flags, and a forged
keyframe would give wrong frames without an error); a refused one is
replaced by the one before, or by the start of the file, as in the PyAV
source. It decodes every frame from the keyframe on (the CLI cannot change
what the decoder skips between packets); it is the fallback for videos PyAV cannot
decode with the same pixels (:func:`~napari_video_extract.core.rgb_frames.pyav_is_exact`)
and the cross-check of the PyAV source in tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import numpy as np

from napari_video_extract.core import frame_source
from napari_video_extract.core.avi_delay import check_run, delay_changes
from napari_video_extract.core.errors import DecodeError, SeekRefusedError
from napari_video_extract.core.ffmpeg import (
    base_args,
    frame_stats_args,
    input_args,
    last_error_line,
    parse_frame_stats,
)
from napari_video_extract.core.frame_source import DecodedFrame
from napari_video_extract.core.probe import VideoInfo
from napari_video_extract.core.seek_points import trusted_seek_start

__all__ = ["FrameStream"]

#: Longest select expression passed on the command line; longer ones go in a file.
_MAX_INLINE_FILTER = 4000


def _select_expression(info: VideoInfo, targets: tuple[int, ...] | None, open_from: int) -> str:
    """A ``select`` expression true exactly for the wanted frames.

    The wanted frames' time windows are sorted and disjoint, so the test is a
    balanced binary search of nested ``if(lt(t, split), left, right)``: each
    frame costs O(log n) comparisons and the expression nests only log2(n)
    deep (ffmpeg's parser refuses a flat sum of a few hundred terms).
    """
    if targets is None:
        lo, _ = info.frame_window(open_from)
        wanted = f"gte(t\\,{lo:.9f})"
    else:
        windows = [info.frame_window(i) for i in sorted(targets)]

        def search(lo: int, hi: int) -> str:
            if hi - lo == 1:
                a, b = windows[lo]
                return f"between(t\\,{a:.9f}\\,{b:.9f})"
            mid = (lo + hi) // 2
            return f"if(lt(t\\,{windows[mid][0]:.9f})\\,{search(lo, mid)}\\,{search(mid, hi)})"

        wanted = search(0, len(windows))
    return wanted


#: fftools moves an input seek back by 3/23 s when the stream has B-frames
#: (it seeks by decoding time: ``seek_timestamp -= 3 * AV_TIME_BASE / 23``),
#: which lands on the keyframe *before* the one asked for.
_FFMPEG_SEEK_BACKOFF = 3 / 23


def _fast_seek_position(info: VideoInfo, start: int) -> float:
    """Input ``-ss`` (container time) that makes ffmpeg start at keyframe ``start``.

    A little after the keyframe, so that the B-frame back-off still lands on
    it, but before half-way to the next keyframe, so it cannot land there.
    Landing elsewhere is caught: frames are identified by timestamp.
    """
    pts = info.frame_pts
    later = info.keyframes[info.keyframes > start]
    end = pts[later[0]] if len(later) else info.first_pts + info.duration
    # Short of half-way: a seek to the midpoint may round to the next frame (AVI slots).
    margin = min(_FFMPEG_SEEK_BACKOFF + 0.005, (end - pts[start]) * 0.45)
    return float(pts[start] + margin - info.container_start)


class FrameStream:
    """One ffmpeg process decoding forward from a keyframe.

    Parameters
    ----------
    info : VideoInfo
        The probed video.
    start : int
        Index of the frame to start decoding at (usually a keyframe; decoding
        really starts at the keyframe before it, or earlier if that keyframe
        does not decode as one: see :func:`.seek_points.trusted_seek_start`).
    targets : tuple of int, optional
        Frames to emit; ``None`` emits every frame from ``first`` on.
    first : int, optional
        With ``targets=None``: the first frame to emit (default ``start``).
    seek : bool or {'fast', 'exact'}
        How to jump to ``start``: ``'fast'`` seeks straight to keyframe
        ``start`` (containers with an index); ``'exact'`` lets ffmpeg seek to
        just before the frame and trim (any container, may decode one extra
        group of pictures); ``True`` picks by container; ``False`` decodes
        from the beginning.
    threads : int, optional
        Decoder threads (default: ffmpeg's choice, one per core).
    stall_timeout : float, optional
        Seconds a read may wait for the decoder before it is killed as hung
        (default :data:`.frame_source.STALL_TIMEOUT_SECONDS`). Time the
        consumer spends between reads does not count.

    Notes
    -----
    Iterate to get :class:`DecodedFrame` objects in display order. Always
    :meth:`close` (or use as a context manager): it kills the process.
    """

    def __init__(
        self,
        info: VideoInfo,
        start: int,
        targets: tuple[int, ...] | None = None,
        *,
        first: int | None = None,
        seek: bool | str = True,
        threads: int | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        self.info = info
        self._stall_timeout = float(
            frame_source.STALL_TIMEOUT_SECONDS if stall_timeout is None else stall_timeout
        )
        self.targets = targets
        self.first = start if first is None else first
        self._first_seen = True  # the next frame is the first given out
        self._dts_only = "avi" in info.container.split(",")
        self._frame_bytes = info.width * info.height * 3
        pts = info.frame_pts
        # Boundaries between frames, for mapping a decoded timestamp to its index.
        self._bounds = (pts[1:] + pts[:-1]) / 2
        self._filter_file: str | None = None
        self._stalled = False
        expr = _select_expression(info, targets, self.first)
        vf = f"select='{expr}',scale={info.width}:{info.height},format=rgb24"
        args = [*base_args(), "-copyts"]
        seek_to = None
        if seek is True:
            seek = "fast" if info.seeks_by_index else "exact"
        if seek and start > 0:
            # ffmpeg cannot tell us that the keyframe it seeks to decodes as
            # one: PyAV checks it first, and a refused one is replaced as the
            # PyAV source replaces it (see seek_points).
            trusted = trusted_seek_start(info, start, timeout=self._stall_timeout)
            if trusted != info.keyframe_before(start):
                start = trusted
        #: The keyframe decoding must start at or before (None: no seek).
        self._landing_limit: int | None = None
        #: AVI: the frame decoding begins at (see avi_delay.check_run). The
        #: select filter may drop the first frames, so it is the run's start,
        #: not what the first frame that passes says.
        self._run_start = info.keyframe_before(start) if seek and start > 0 else 0
        self._run_began = self._run_start
        if seek and start > 0:
            if seek == "fast":
                # Land exactly on keyframe ``start``.
                seek_to = _fast_seek_position(info, start)
            else:
                # Just before the frame: ffmpeg decodes from the keyframe before.
                lo, _ = info.frame_window(start)
                seek_to = lo - info.container_start
            # No accurate-seek trim: our select filter drops what precedes
            # ``first``, and ffmpeg's count of decoded frames then tells
            # where decoding began.
            args += ["-noaccurate_seek"]
            if info.seeks_by_index:  # elsewhere a seek may land late on a real keyframe
                self._landing_limit = info.keyframe_before(start)
        if threads:
            args += ["-threads", str(int(threads))]  # decoder threads (input option)
        args += input_args(info.path, seek=seek_to)
        args += ["-map", "0:V:0", "-an", "-sn", "-dn"]
        if len(vf) > _MAX_INLINE_FILTER:
            fd, self._filter_file = tempfile.mkstemp(prefix="nve-filter-", suffix=".txt")
            with os.fdopen(fd, "w") as fh:
                fh.write(vf)
            args += ["-/vf", self._filter_file]
        else:
            args += ["-vf", vf]
        stats_read, stats_write = os.pipe()
        args += ["-fps_mode", "passthrough", *frame_stats_args(stats_write)]
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24"]
        if targets is not None:
            args += ["-frames:v", str(len(targets))]
        args += ["pipe:1"]
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(stats_write,),
            )
        except BaseException:
            os.close(stats_read)
            raise
        finally:
            os.close(stats_write)
        self._stats_pipe = os.fdopen(stats_read, "rb")
        #: (timestamp, frames the decoder gave before it) of each frame sent.
        self._pts: queue.Queue[tuple[float, int] | None] = queue.Queue()
        #: Frames the decoder produced, as ffmpeg counts them (see :attr:`frames_decoded`).
        self._decoded = 0
        self._stderr_tail: list[bytes] = []
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # fewer wake-ups per multi-MB frame
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self._stats_reader = threading.Thread(target=self._read_stats, daemon=True)
        self._stats_reader.start()
        self._closed = False
        self._closing = threading.Event()
        #: When the consumer started waiting for the decoder (None: not waiting).
        self._waiting_since: float | None = None
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        """Kill a decoder that keeps a waiting consumer waiting too long."""
        poll = min(1.0, self._stall_timeout / 4)
        while not self._closing.wait(poll):
            since = self._waiting_since
            if since is not None and time.monotonic() - since > self._stall_timeout:
                self._stalled = True
                self._proc.kill()
                return

    def abort(self) -> None:
        """Stop the decoder from any thread: the reading thread sees the end.

        Unlike :meth:`close`, touches no pipe another thread may be reading;
        the owner still calls :meth:`close`.
        """
        self._closing.set()
        with contextlib.suppress(OSError):
            if self._proc.poll() is None:
                self._proc.kill()

    def _read_stderr(self) -> None:
        """Keep the end of ffmpeg's log, for error messages only (never for facts)."""
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr_tail.append(line)
            del self._stderr_tail[:-20]

    def _read_stats(self) -> None:
        """Queue the timestamp of each frame ffmpeg sends to stdout, in order."""
        with contextlib.suppress(OSError, ValueError):
            for line in self._stats_pipe:
                stats = parse_frame_stats(line)
                if stats is None or stats.pts is None:
                    break  # unreadable: the frames can no longer be identified
                self._decoded = max(self._decoded, stats.decoded + 1)
                self._pts.put((stats.pts, stats.decoded))
        self._pts.put(None)

    @property
    def frames_decoded(self) -> int:
        """Frames the decoder has produced up to the last frame given out.

        ffmpeg's own count (from where this process started decoding), also
        the frames the ``select`` filter dropped: what this run really cost.
        """
        return self._decoded

    def error_text(self) -> str:
        """ffmpeg's last meaningful stderr line."""
        if self._stalled:
            return f"decoder produced nothing for {self._stall_timeout:g} s"
        return last_error_line(b"".join(self._stderr_tail))

    def index_of(self, pts: float) -> int:
        """Frame index whose window holds the decoded timestamp ``pts``."""
        return int(np.searchsorted(self._bounds, pts, side="right"))

    def __iter__(self) -> Iterator[DecodedFrame]:
        return self

    def __next__(self) -> DecodedFrame:
        if self._closed:
            raise StopIteration
        assert self._proc.stdout is not None
        buf = self._read_exact(self._frame_bytes)
        if buf is None:
            self.close()
            raise StopIteration
        try:
            stats = self._pts.get(timeout=self._stall_timeout)
        except queue.Empty:
            stats = None
        if stats is None:
            self.close()
            raise DecodeError(self.info.path, "decoder output and timestamps out of step")
        pts, decoded_before = stats
        index = self.index_of(pts)
        if self._dts_only and decoded_before >= 0:
            self._check_count(index, decoded_before)
        if self._first_seen:
            self._first_seen = False
            if decoded_before >= 0:  # -1: ffmpeg does not know
                self._check_landing(index - decoded_before)
        image = np.frombuffer(buf, dtype=np.uint8).reshape(self.info.height, self.info.width, 3)
        return DecodedFrame(index=index, time=float(self.info.frame_times[index]), image=image)

    def _check_count(self, index: int, decoded_before: int) -> None:
        """Refuse an AVI frame whose index does not follow from the decoder's count.

        The count is off when the decoder's delay changed (the frame is not
        the one its time says) or when a damaged packet gave no frame (it
        is); only the decoder can tell which: PyAV decodes the run up to the
        frame, once, watching its delay (see :mod:`.avi_delay`).
        """
        try:
            self._run_began = check_run(self.info, index, decoded_before, self._run_began)
        except DecodeError:
            if delay_changes(self.info, self._run_start, index, timeout=self._stall_timeout):
                self.close()
                raise
            self._run_began = index - decoded_before  # a lost frame: count on from here

    def _check_landing(self, index: int) -> None:
        """Refuse a run whose decoder began (at frame ``index``) after its keyframe.

        Its frames from there on lack their references: wrong without an
        error. In a file seeked by its index, a seek lands late where the
        demuxer's index is not the file's (an AVI cut before its ``idx1``:
        ffmpeg indexes every chunk it has read as a keyframe); the caller's
        next try starts earlier.
        """
        limit = self._landing_limit
        if limit is not None and index > limit:
            self.close()
            raise SeekRefusedError(
                self.info.path, f"the seek to keyframe {limit} began decoding at frame {index}"
            )

    def _read_exact(self, n: int) -> bytes | None:
        assert self._proc.stdout is not None
        self._waiting_since = time.monotonic()
        try:
            data = self._proc.stdout.read(n)
        finally:
            self._waiting_since = None
        if not data or len(data) < n:
            return None
        return data

    def close(self) -> None:
        """Stop the process and release its pipes (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._proc.poll() is None:
            self._proc.kill()
        if sys.is_finalizing():
            # Daemon threads are frozen mid-read: touching their pipes now
            # aborts the interpreter ("could not acquire lock").
            return
        if self._proc.stdout is not None:
            with contextlib.suppress(OSError):
                self._proc.stdout.close()
        self._proc.wait()
        # stderr and the stats pipe end with the process; closing them while
        # their reader threads still read makes those threads fail.
        self._reader.join(timeout=5)
        self._stats_reader.join(timeout=5)
        if self._proc.stderr is not None:
            with contextlib.suppress(OSError):
                self._proc.stderr.close()
        with contextlib.suppress(OSError):
            self._stats_pipe.close()
        if self._filter_file:
            with contextlib.suppress(OSError):
                os.unlink(self._filter_file)
            self._filter_file = None

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        with contextlib.suppress(Exception):
            self.close()

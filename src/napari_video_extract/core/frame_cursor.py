"""The reader's running decoder: reach a frame by continuing or by seeking.

A :class:`FrameCursor` keeps one decoder (an ffmpeg process, or an open
PyAV file) positioned after the last frame it gave, and reaches a wanted
frame whichever way is cheaper:

* **continuing**: decode forward from where the decoder is (the frames on
  the way are handed to the owner, who caches them);
* **a jump**: seek to the keyframe before the frame and decode forward from
  there; with PyAV the frames on the way that nothing references are
  skipped, not decoded (:mod:`.pyav_source`).

The choice weighs the frames continuing would decode against a seek's
start-up cost plus the frames the jump passes, each at the measured cost of
a passed frame (:func:`~napari_video_extract.core.reference_frames.reference_fraction`).
A cursor is not thread-safe: :class:`~napari_video_extract.core.video_reader.VideoReader`
holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from napari_video_extract.core.cores import usable_cores
from napari_video_extract.core.decode_plan import DECODE_PIXELS_PER_SECOND, startup_frames
from napari_video_extract.core.errors import DecodeError
from napari_video_extract.core.frame_source import DecodedFrame
from napari_video_extract.core.probe import VideoInfo
from napari_video_extract.core.pyav_source import PyAVStream, pyav_attempts
from napari_video_extract.core.reference_frames import reference_fraction

if TYPE_CHECKING:
    # Imported when the ffmpeg backend is used: opening a video with PyAV
    # does not pay for it.
    from napari_video_extract.core.ffmpeg_source import FrameStream
    from napari_video_extract.core.video_reader import ReaderStats

__all__ = ["PYAV_SEEK_SECONDS", "FrameCursor", "reader_frame_threads"]

#: Seconds for a seek in an open PyAV container (flush + read the keyframe).
PYAV_SEEK_SECONDS = 0.01


def reader_frame_threads() -> int:
    """Frame threads for a reader's decoder: two more than its cores (at most 16).

    More frames in flight keep the cores busy through a jump's chain of
    references and while a decoded frame is converted to RGB. Measured on
    2 cores (720p H.264, the machine to ourselves: ``chrt -f``), against
    FFmpeg's automatic choice (``thread_type="AUTO"``: frame and slice
    flags, cores + 1 threads), in four paired runs: a jump 11-21 % faster
    in wall time and 7-16 % cheaper in CPU, stepping forward at least as
    fast. Frame threading only: with the slice flag as well, the same 4
    threads were slower.
    """
    return min(usable_cores() + 2, 16)


class FrameCursor:
    """One running decoder in a video, continued or re-seeked to reach frames.

    Parameters
    ----------
    info : VideoInfo
        The probed video.
    backend : {'pyav', 'ffmpeg'}
        The decoder.
    stats : ReaderStats
        Counters to update (``streams_started``, ``frames_decoded``,
        ``decoder_frames``).
    on_frame : callable
        ``on_frame(index, image)`` for every frame the decoder gives (the
        reader's cache).
    """

    def __init__(
        self,
        info: VideoInfo,
        backend: str,
        stats: ReaderStats,
        on_frame: Callable[[int, np.ndarray], None],
    ) -> None:
        self._info = info
        self._backend = backend
        self._stats = stats
        self._on_frame = on_frame
        self.stream: FrameStream | PyAVStream | None = None
        #: Index of the next frame the running stream will give.
        self.next_index = 0
        # Streams to stop when the reader is collected or Python exits,
        # without referring to the cursor (see VideoReader's finalizer).
        self.open_streams: set[FrameStream | PyAVStream] = set()
        self._skips = True  # the skip choice the running stream was opened with
        #: Why the last stream ended early (a DecodeError's reason; empty: it did not).
        self.last_error = ""
        self._counted = 0  # its frames_decoded already in stats.decoder_frames
        if backend == "pyav":
            pixels = max(info.width * info.height, 1)
            self._startup = PYAV_SEEK_SECONDS * DECODE_PIXELS_PER_SECOND / pixels
        else:
            self._startup = startup_frames(info)
        self._passing: float | None = None  # cost of a frame a jump passes (lazy)

    # ------------------------------------------------------------- the choice
    @property
    def weighed(self) -> bool:
        """True once the cost of a passed frame has been measured."""
        return self._passing is not None

    def may_weigh_a_jump(self, i: int) -> bool:
        """True if reaching ``i`` may choose between continuing and seeking.

        Only a read past a keyframe ahead of the running decoder does; a step
        (the first one after opening included) does not pay for measuring
        the cost of passing frames. Safe without the owner's lock: a hint only.
        """
        stream_next = self.next_index
        return (
            self.stream is not None
            and i > stream_next
            and self._info.keyframe_before(i) > stream_next
        )

    def passing_fraction(self) -> float:
        """Cost of a frame a jump passes, relative to a decoded one (measured once).

        It reads up to 600 packets (~15 ms): the reader calls it outside its
        lock the first time, so reads of cached frames are not held up.
        """
        if self._passing is None:
            # PyAV's jump decodes only the references on the way. Two threads
            # may both measure (same result).
            self._passing = reference_fraction(self._info) if self._backend == "pyav" else 1.0
        return self._passing

    def _worth_continuing_to(self, i: int) -> bool:
        """True if continuing the running decoder is cheaper than a new seek."""
        if self.stream is None or i < self.next_index:
            return False
        keyframe = self._info.keyframe_before(i)
        if keyframe <= self.next_index:
            return True  # a new decoder would decode the same frames anyway
        passing = self.passing_fraction()
        return (i - self.next_index) <= self._startup + passing * (i - keyframe)

    # ---------------------------------------------------------------- reaching
    def reach(self, i: int) -> np.ndarray:
        """Frame ``i``, by continuing the running decoder or by a jump.

        Raises
        ------
        DecodeError
            Every try failed to produce that frame.
        """
        if self._worth_continuing_to(i):
            frame = self._advance_to(i)
            if frame is not None:
                return frame
            # The decoder died (e.g. killed as hung, or a damaged file): seek again.
        # A seek may land after the keyframe (timestamp-searched containers),
        # or the decoder may withhold the frames after it: PyAV then retries
        # from the keyframe before, then from the start, and last without
        # skipping anything (the same tries as decode_frames).
        keyframe = self._info.keyframe_before(i)
        if self._backend == "pyav":
            attempts = pyav_attempts(self._info, keyframe)
        else:
            attempts = [(True, False), (False, False)] if keyframe > 0 else [(False, False)]
        self.last_error = ""
        for seek, skip in attempts:
            self._start(i, seek=seek, skip=skip)
            frame = self._advance_to(i)
            if frame is not None:
                return frame
        reason = f": {self.last_error}" if self.last_error else ""
        raise DecodeError(self._info.path, f"frame {i} could not be decoded{reason}")

    def _start(self, i: int, *, seek: bool | str, skip: bool = True) -> None:
        start = self._info.keyframe_before(i) if seek else 0
        stream = self.stream
        if isinstance(stream, PyAVStream) and not stream.closed and self._skips == skip:
            try:
                stream.restart(start, first=i, seek=seek)  # a seek in the open file
            except DecodeError:
                self.close()
        else:
            self.close()
        if self.stream is None:
            self.stream = self.new_stream(start, first=i, seek=seek, skip=skip)
            self._counted = 0
            self._skips = skip
            self.open_streams.add(self.stream)
        self.next_index = i
        self._stats.streams_started += 1

    def new_stream(
        self, start: int, *, first: int, seek: bool | str, skip: bool
    ) -> FrameStream | PyAVStream:
        """A new decoder from keyframe ``start``, giving the frames from ``first``."""
        if self._backend == "pyav":
            try:
                return PyAVStream(
                    self._info,
                    start,
                    first=first,
                    seek=seek,
                    skip=skip,
                    frame_threads=reader_frame_threads(),
                )
            except DecodeError:
                raise
            except Exception as exc:  # av.FFmpegError and friends: one clear line
                raise DecodeError(self._info.path, f"PyAV cannot decode it: {exc}") from None
        from napari_video_extract.core.ffmpeg_source import FrameStream

        return FrameStream(self._info, start, first=first, seek=seek)

    def _advance_to(self, i: int) -> np.ndarray | None:
        """Read the running stream up to frame ``i``; None if it is not there."""
        while True:
            decoded = self.next_frame(last=i)
            if decoded is None:
                return None
            if decoded.index == i:
                return decoded.image

    def next_frame(self, *, last: int | None = None) -> DecodedFrame | None:
        """The running stream's next frame (handed to ``on_frame``); None
        (stream closed) if it ended, failed, or gave a frame before the
        expected one or after ``last``."""
        stream = self.stream
        if stream is None:
            return None
        try:
            decoded = next(stream)
        except StopIteration:
            self.close()
            return None
        except DecodeError as exc:
            self.last_error = exc.reason  # for reach's message
            self.close()
            return None
        finally:
            self._count_decoder_frames(stream)
        self._stats.frames_decoded += 1
        if decoded.index < self.next_index or (last is not None and decoded.index > last):
            # A frame was skipped (inexact seek) or repeated: never return
            # another frame than the one asked for.
            self.close()
            return None
        self.next_index = decoded.index + 1
        self._on_frame(decoded.index, decoded.image)
        return decoded

    def _count_decoder_frames(self, stream: FrameStream | PyAVStream) -> None:
        # The running total of the stream (ffmpeg's arrives from a pipe, a
        # little late: what one read missed, the next one counts).
        done = stream.frames_decoded
        self._stats.decoder_frames += max(done - self._counted, 0)
        self._counted = max(done, self._counted)

    def close(self) -> None:
        """Stop the running decoder (idempotent); the next read seeks."""
        if self.stream is not None:
            self.stream.close()
            self.open_streams.discard(self.stream)
            self.stream = None

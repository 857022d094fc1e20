"""Random access to the frames of a video, exact and cached, without Qt.

:class:`VideoReader` gives any frame of a video by index, with the same
pixels as decoding the video sequentially up to that frame. It follows the
imageio v3 reader shape (``read``, ``iter``, ``properties``, ``metadata``,
``close``, context manager) so it is familiar from notebooks, and it is what
the napari reader puts behind its lazy layer data.

What a read costs
-----------------
Opening only probes the file (packet listing, nothing decoded but the first
frame), so it does not grow with the video's length in memory and stays fast.

A frame that is not cached costs one of:

* **stepping forward**: the reader keeps one ffmpeg decoder running, positioned
  after the last frame it returned. A frame a little ahead of it is reached by
  decoding forward (the frames in between are cached on the way), which is as
  fast as sequential decoding;
* **a jump**: start a new decoder at the keyframe before the frame and decode
  forward from there, i.e. "start a process" plus "decode from the previous
  keyframe", so the cost depends on the keyframe spacing of the file. With
  PyAV the frames on the way that nothing references are skipped, not
  decoded (:mod:`.pyav_source`): a jump decodes only the references.

The reader picks whichever is cheaper (:mod:`.frame_cursor`). Frames are
kept in a least-recently-used cache bounded in bytes.

Prefetch
--------
While the user steps (or scrubs) forward, a background thread
(:class:`~napari_video_extract.core.prefetch.Prefetcher`) keeps the running
decoder going a few frames ahead of the last frame read, into the same
cache, so the next reads are cache hits. It only continues the decoder the
reads already use (never a seek of its own), under the reader's lock, at
most ``prefetch`` frames ahead and never more than a quarter of the cache;
a waiting read is served before the next prefetched frame; :meth:`close`
stops it. Random jumps start no prefetch.

Two decoders
------------
``backend="ffmpeg"`` runs the ffmpeg executable of imageio-ffmpeg (the
extraction engine's decoder): a jump pays a process start and open (60-90 ms).
``backend="pyav"`` decodes in process with PyAV (the ``all`` extra): the file
stays open and a jump is a seek in it, which is what makes random access as
fast as OpenCV's. Both give the same frames: PyAV frames are identified by
their best-effort timestamp mapped to the probe's frame table (like
``showinfo`` with ``-copyts``), converted to RGB by the same swscale path and
rotated like ffmpeg's autorotate. The one known difference: frames with an
odd height and vertically subsampled chroma (4:2:0, e.g. 720x405) convert
slightly differently in PyAV's libswscale (max 28 levels on the 720x405
MPEG-2 clip), so ``backend="auto"`` uses ffmpeg for those.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_video_extract.core.errors import SeekRefusedError
from napari_video_extract.core.frame_cursor import FrameCursor
from napari_video_extract.core.prefetch import Prefetcher
from napari_video_extract.core.probe import VideoInfo, probe
from napari_video_extract.core.pyav_source import pyav_available
from napari_video_extract.core.rgb_frames import pyav_is_exact

if TYPE_CHECKING:
    from napari_video_extract.core.ffmpeg_source import FrameStream
    from napari_video_extract.core.pyav_source import PyAVStream

__all__ = [
    "BACKENDS",
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_PREFETCH_FRAMES",
    "ReaderStats",
    "VideoProperties",
    "VideoReader",
    "pyav_available",
]

#: Default bound of the frame cache: 128 MiB (about 48 frames of 720p), so a
#: reader process (PyAV, numpy, the cache) stays under 300 MB.
DEFAULT_CACHE_BYTES = 128 * 2**20
#: Default number of frames decoded ahead while the user steps forward.
DEFAULT_PREFETCH_FRAMES = 8
#: Decoders a :class:`VideoReader` can use.
BACKENDS = ("auto", "pyav", "ffmpeg")


@dataclass(frozen=True)
class VideoProperties:
    """Array-level description of a video (imageio v3's ``properties()``).

    Attributes
    ----------
    shape : tuple of int
        ``(frames, height, width, 3)``.
    dtype : numpy.dtype
        Always ``uint8``.
    n_images : int
        Number of frames (counted from packets, not the header).
    is_batch : bool
        Always True: the first axis indexes frames.
    fps : float
        Average frame rate (frames / duration).
    """

    shape: tuple[int, int, int, int]
    dtype: np.dtype
    n_images: int
    is_batch: bool
    fps: float


@dataclass
class ReaderStats:
    """Counters of what a :class:`VideoReader` did (for tests and benchmarks).

    Attributes
    ----------
    streams_started : int
        Decoding runs started (each one is a seek: a new ffmpeg process, or
        a seek in the open PyAV file).
    frames_decoded : int
        Frames received from decoders (the frames read and the frames the
        running decoder gave on the way; skipped ones are not received).
    decoder_frames : int
        Frames the decoders really decoded, as they count them: the received
        ones plus the references decoded on the way to them (for PyAV, a
        frame still in the decoder's threads when a seek flushes it is not
        counted).
    cache_hits : int
        Reads answered from the cache.
    frames_prefetched : int
        Frames the background prefetch decoded (included in ``frames_decoded``).
    """

    streams_started: int = 0
    frames_decoded: int = 0
    decoder_frames: int = 0
    cache_hits: int = 0
    frames_prefetched: int = 0


class VideoReader:
    """Exact, cached random access to the frames of one video.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    info : VideoInfo, optional
        Its probe result, if already known (saves probing again).
    cache_bytes : int, optional
        Upper bound of the frame cache in bytes (default 128 MiB). ``0``
        disables caching.
    backend : {'auto', 'pyav', 'ffmpeg'}, optional
        The decoder (see the module notes). ``'auto'`` (default) is PyAV when
        it is installed and gives the ffmpeg executable's exact pixels for
        this video, else ffmpeg.
    prefetch : int, optional
        Frames to decode ahead in a background thread while reads step
        forward (default 8; at most a quarter of the cache; ``0`` disables
        it). See the module notes.

    Raises
    ------
    ValueError
        Unknown ``backend``.
    ImportError
        ``backend='pyav'`` without PyAV installed.
    VideoOpenError
        The file cannot be opened (see :func:`~napari_video_extract.core.probe.probe`).
    NotAVideoError
        The file holds no decodable video stream.

    Notes
    -----
    Reading a frame in a video compressed with keyframes costs "decode
    forward from the previous keyframe" (plus, with ffmpeg, starting a decoder
    process, about 60 ms) unless the frame is in the cache or a little ahead of the frame read
    last, in which case the running decoder simply continues: read frames in
    increasing order whenever you can. The reader is thread-safe (one lock;
    reads are serialised). Always :meth:`close` it, or use it as a context
    manager: it owns an ffmpeg process or an open PyAV file, and a prefetch
    thread once reads have stepped forward.

    Examples
    --------
    >>> with VideoReader("clip.mp4") as video:  # doctest: +SKIP
    ...     first = video.read(0)
    ...     times = video.metadata()["frame_times"]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        info: VideoInfo | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        backend: str = "auto",
        prefetch: int = DEFAULT_PREFETCH_FRAMES,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "pyav" and not pyav_available():
            raise ImportError("backend='pyav' needs PyAV: pip install av")
        # The whitelists are applied at every open (open_container / the
        # ffmpeg input options), not by the probe: a probe served from the
        # frame-index cache opens nothing.
        self._info = info if info is not None else probe(path)
        if backend == "auto":
            backend = "pyav" if pyav_available() and pyav_is_exact(self._info) else "ffmpeg"
        self._backend = backend
        self._frame_bytes = self._info.width * self._info.height * 3
        self._cache_limit = max(0, int(cache_bytes))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self.stats = ReaderStats()
        # The cursor caches through a weak reference: no cycle keeps an unused
        # reader (and its decoder) alive until the garbage collector runs.
        remember = weakref.WeakMethod(self._remember)
        self._cursor = FrameCursor(
            self._info, backend, self.stats, lambda i, image: remember()(i, image)
        )
        # Prefetch at most a quarter of the cache, so it never evicts the
        # frames it decoded for the next reads (nor much of the rest).
        cache_frames = self._cache_limit // max(self._frame_bytes, 1)
        self._prefetch_frames = max(0, min(int(prefetch), cache_frames // 4))
        self._prefetch_until = 0  # the prefetch decodes frames before this one
        self._last_read: int | None = None
        self._prefetcher = Prefetcher(self._prefetch_step, name=f"prefetch {self._info.path.name}")
        # Streams are stopped when the reader is collected or Python exits
        # (at exit, before daemon threads freeze), without referring to self.
        self._finalizer = weakref.finalize(
            self, _close_streams, self._cursor.open_streams, self._prefetcher
        )
        self._closed = False

    # ------------------------------------------------------------------ info
    @property
    def info(self) -> VideoInfo:
        """The probe result (frame table, keyframes, size...)."""
        return self._info

    @property
    def backend(self) -> str:
        """The decoder in use: ``'pyav'`` or ``'ffmpeg'``."""
        return self._backend

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(frames, height, width, 3)``."""
        return (self._info.frame_count, self._info.height, self._info.width, 3)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def cached_bytes(self) -> int:
        """Bytes of frames currently held in the cache."""
        with self._lock:
            return len(self._cache) * self._frame_bytes

    def __len__(self) -> int:
        return self._info.frame_count

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)} frames"
        return f"VideoReader({str(self._info.path)!r}, {state}, backend={self._backend!r})"

    def properties(self) -> VideoProperties:
        """Shape and type of the whole video seen as an array.

        Returns
        -------
        VideoProperties
        """
        return VideoProperties(
            shape=self.shape,
            dtype=np.dtype(np.uint8),
            n_images=len(self),
            is_batch=True,
            fps=float(self._info.avg_fps),
        )

    def metadata(self) -> dict:
        """Video-level metadata, JSON-friendly.

        Returns
        -------
        dict
            :meth:`VideoInfo.as_dict` plus ``fps`` (average frame rate) and
            ``frame_times`` (list of presentation times in seconds, relative to
            the first frame, one per frame in display order).
        """
        meta = self._info.as_dict()
        meta["fps"] = float(self._info.avg_fps)
        meta["frame_times"] = self._info.frame_times.astype(float).tolist()
        return meta

    # ----------------------------------------------------------------- reads
    def _check_index(self, index: int) -> int:
        n = len(self)
        try:
            i = int(index)
        except TypeError:
            raise TypeError(
                f"frame index must be an integer, not {type(index).__name__}"
            ) from None
        if i != index:
            raise TypeError(f"frame index must be an integer, not {index!r}")
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame index {index} out of range for a video of {n} frames")
        return i

    def read(self, index: int) -> np.ndarray:
        """The frame ``index`` as an ``(height, width, 3)`` uint8 RGB array.

        Parameters
        ----------
        index : int
            Frame index in display order; negative counts from the end.

        Returns
        -------
        numpy.ndarray
            Read-only; copy it before modifying it (it may be the cached one).

        Raises
        ------
        IndexError
            ``index`` is outside the video.
        DecodeError
            The decoder could not produce that frame (damaged file).
        ValueError
            The reader is closed.
        """
        i = self._check_index(index)
        if not self._cursor.weighed and self._cursor.may_weigh_a_jump(i):
            # Measured outside the lock (it reads up to 600 packets, ~15 ms):
            # reads of cached frames from other threads are not held up by it.
            self._cursor.passing_fraction()
        with self._prefetcher.foreground(), self._lock:
            if self._closed:
                raise ValueError("I/O operation on a closed VideoReader")
            frame = self._cache.get(i)
            if frame is not None:
                self._cache.move_to_end(i)
                self.stats.cache_hits += 1
            else:
                frame = self._cursor.reach(i)
            self._plan_prefetch(i)
            return frame

    def _plan_prefetch(self, i: int) -> None:
        """After reading ``i``: prefetch ahead if the reads step forward."""
        last, self._last_read = self._last_read, i
        stepping = last is not None and 0 < i - last <= max(self._prefetch_frames, 1)
        if self._prefetch_frames and stepping and self._cursor.stream is not None:
            self._prefetch_until = min(i + 1 + self._prefetch_frames, len(self))
            if self._cursor.next_index < self._prefetch_until:
                self._prefetcher.request()

    def _prefetch_step(self) -> bool:
        """Decode the running stream's next frame into the cache; False when done."""
        with self._lock:
            cursor = self._cursor
            if self._closed or cursor.stream is None:
                return False
            if cursor.next_index >= self._prefetch_until:
                return False
            if cursor.next_frame() is None:
                return False
            self.stats.frames_prefetched += 1
            return cursor.next_index < self._prefetch_until

    def _remember(self, i: int, image: np.ndarray) -> None:
        if self._frame_bytes > self._cache_limit:
            return
        self._cache[i] = image
        self._cache.move_to_end(i)
        while len(self._cache) * self._frame_bytes > self._cache_limit:
            self._cache.popitem(last=False)

    def iter(self, *, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start`` to ``stop - 1`` in order, from a decoder of their own.

        Sequential reading at full decoder speed; it neither uses nor fills
        the cache, and does not disturb :meth:`read`.

        Parameters
        ----------
        start : int, optional
            First frame (default 0).
        stop : int, optional
            One past the last frame (default: the end of the video).

        Yields
        ------
        numpy.ndarray
            ``(height, width, 3)`` uint8 RGB, read-only.

        Raises
        ------
        DecodeError
            The decoder stopped before ``stop`` (damaged file).
        ValueError
            The reader is closed.
        """
        n = len(self)
        stop = n if stop is None else min(int(stop), n)
        start = max(0, int(start))
        if start >= stop:
            return
        if self._closed:
            raise ValueError("I/O operation on a closed VideoReader")
        expected = start
        # A run refused where it began (a seek that landed late): as a late
        # landing. Other errors (a stall) are not waited out a second time.
        with (
            contextlib.suppress(SeekRefusedError),
            self._cursor.new_stream(
                self._info.keyframe_before(start), first=start, seek=start > 0, skip=True
            ) as stream,
        ):
            for decoded in stream:
                if decoded.index != expected:
                    break
                yield decoded.image
                expected += 1
                if expected >= stop:
                    return
        # Rare: a seek that landed late; fall back to a read per missing frame.
        for i in range(expected, stop):
            yield self.read(i)

    # -------------------------------------------------------------- lifetime
    def clear_cache(self) -> None:
        """Drop every cached frame."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Stop the prefetch and the decoder, and drop the cache (idempotent)."""
        with self._lock:
            self._closed = True
        # Outside the lock: the worker may be waiting for it to see "closed".
        self._prefetcher.stop()
        with self._lock:
            self._cursor.close()
            self._cache.clear()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_streams(streams: set[FrameStream | PyAVStream], prefetcher: Prefetcher) -> None:
    prefetcher.stop()
    for stream in list(streams):
        stream.close()
    streams.clear()

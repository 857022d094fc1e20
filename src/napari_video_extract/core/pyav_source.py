"""A frame source on PyAV: the file stays open in process, a jump is a seek.

Gives the same frames as :class:`~napari_video_extract.core.ffmpeg_source.FrameStream`:
frames are identified by their best-effort timestamp mapped to the probe's
frame table (like ``showinfo`` with ``-copyts``), converted to RGB by the same
swscale path and rotated like ffmpeg's autorotate. The one known difference:
frames with an odd height and vertically subsampled chroma (4:2:0, e.g.
720x405) convert slightly differently in PyAV's libswscale (max 28 levels on
the 720x405 MPEG-2 clip); :func:`~napari_video_extract.core.rgb_frames.pyav_is_exact`
says when the pixels are the executable's (:mod:`.rgb_frames` converts).

Reference-only decoding
-----------------------
On the way to a wanted frame the decoder skips the frames nothing else is
predicted from (``skip_frame = "NONREF"``), and decodes each wanted frame
normally: the choice is made per packet, before the packet goes to the
decoder, from the packet's presentation timestamp mapped to the probe's
frame table. It is done only for the decoders in
:data:`NONREF_EXACT_CODECS`, where FFmpeg's NONREF test is exactly "no other
picture refers to this one"; every other codec decodes everything.

What is guaranteed: a skipped picture is never a reference, so every frame
that is decoded is decoded exactly as in a full decode, and a frame is given
only under the index its own best-effort timestamp maps to (never another
frame in its place). What is not: that every wanted frame is decoded. The
choice uses the packet's pts, the frame is named by its best-effort
timestamp (which may be the dts); should they disagree, a wanted frame is
skipped and goes missing. The callers' last try (:func:`pyav_attempts`)
therefore decodes without skipping.

Two cases are kept out, conservatively:

* A packet without a pts (MPEG-PS/TS stamp only some PES packets; the second
  field of a field-coded picture often has none) keeps the previous
  packet's choice, so the two fields of one picture are skipped or decoded
  together.
* Interlaced video skips nothing: with field pictures (MPEG-2, H.264 PAFF)
  a skipped field next to a decoded one would make a half-decoded picture.
  Skipping starts only once a decoded frame has shown the stream
  progressive (``frame.interlaced_frame`` false), stops for good at the
  first interlaced frame, and never starts when the stream's header field
  order is interlaced (``codec_context.field_order``, FFmpeg's
  ``AVFieldOrder``).

Frame threading keeps that exact: FFmpeg copies ``skip_frame`` from the
user's context into the worker thread's when each packet is submitted
(``update_context_from_user`` in ``libavcodec/pthread_frame.c``), so the
decision made for a packet applies to that packet (checked in
``tests/core/test_reference_decoding.py``). Parallel extraction runs still use one
thread per decoder: the runs themselves are the parallelism.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

import numpy as np

from napari_video_extract.core.avi_delay import check_delay
from napari_video_extract.core.aviindex import duration_estimate
from napari_video_extract.core.container import first_video_stream, open_container
from napari_video_extract.core.errors import DecodeError, SeekRefusedError, VideoOpenError
from napari_video_extract.core.frame_source import DecodedFrame
from napari_video_extract.core.probe import VideoInfo
from napari_video_extract.core.rgb_frames import RGBConverter

__all__ = [
    "NONREF_EXACT_CODECS",
    "PyAVStream",
    "interlaced_by_header",
    "pyav_attempts",
    "pyav_available",
]

#: Decoders whose ``skip_frame="NONREF"`` drops only pictures no other picture
#: references: H.264 (``nal_ref_idc == 0``, never an IDR), MPEG-1/2 video and
#: MPEG-4 part 2 (B-pictures, never references in those standards). HEVC is
#: left out: its "sub-layer non-reference" pictures may still be references
#: of a higher temporal sub-layer. VP8/VP9/AV1 decoders do not skip by it.
NONREF_EXACT_CODECS = frozenset({"h264", "mpeg1video", "mpeg2video", "mpeg4"})

# FFmpeg's AVFieldOrder values, as PyAV's ``codec_context.field_order`` gives them.
_FIELD_ORDER_UNKNOWN, _FIELD_ORDER_PROGRESSIVE = 0, 1
# FFmpeg's AV_PICTURE_TYPE_I, as ``frame.pict_type`` gives it (an int enum,
# ``av.video.frame.PictureType.I``, since PyAV 14).
_PICT_I = 1
#: Codecs whose I-frames need not be random access points (later frames may
#: refer past them): a seek is trusted there only on the decoder's key flag.
_I_FRAMES_KEEP_REFERENCES = frozenset({"h264", "hevc", "vp9", "av1", "vvc"})


def pyav_available() -> bool:
    """True if PyAV (``import av``) is installed; does not import it."""
    return importlib.util.find_spec("av") is not None


def _has_frame_threads(stream) -> bool:
    """True if the stream's decoder can run frame threads (MPEG-2 has slices only)."""
    from av.codec.codec import Capabilities

    return bool(stream.codec_context.codec.capabilities & Capabilities.frame_threads)


def interlaced_by_header(codec_context) -> bool:
    """True if a PyAV codec context's field order (from the stream header) is interlaced."""
    return codec_context.field_order not in (_FIELD_ORDER_UNKNOWN, _FIELD_ORDER_PROGRESSIVE)


def pyav_attempts(info: VideoInfo, start: int) -> list[tuple[bool | str, bool]]:
    """``(seek, skip)`` tries for a :class:`PyAVStream` from keyframe ``start``, cheapest first.

    A seek may land after the keyframe (timestamp-searched containers): the
    next try seeks to the keyframe before, then decoding starts from the
    beginning. The last resort, for the codecs that skip, decodes everything:
    the skip choice is made from the packet's timestamp, the frame is
    identified by its best-effort timestamp, and should they disagree a
    wanted frame could be skipped, which a full decode cannot do.
    """
    tries: list[tuple[bool | str, bool]] = [(True, True), ("earlier", True)] if start > 0 else []
    tries.append((False, True))
    if info.codec in NONREF_EXACT_CODECS:
        tries.append((False, False))
    return tries


class PyAVStream:
    """An open PyAV container decoding forward from a keyframe (in process).

    Gives :class:`DecodedFrame` objects like :class:`FrameStream`, with the
    same pixels and indices, but a jump is a seek in the open file
    (:meth:`restart`) instead of a new process.

    Parameters
    ----------
    info : VideoInfo
        The probed video; only the regular file the probe accepted is opened,
        as a plain path, with the probe's protocol and demuxer whitelists.
    start : int
        Keyframe to start decoding at.
    targets : tuple of int, optional
        The wanted frames: only they are given, and the frames before and
        between them are decoded only as far as they are references.
        ``None``: every frame from ``first`` on.
    first : int, optional
        With ``targets=None``: the first frame to give (default ``start``);
        the frames before it are decoded only as far as they are references.
    seek : bool or {'earlier'}
        ``True`` seeks to keyframe ``start``; ``'earlier'`` to the keyframe
        before it (for files whose seek lands late); ``False`` decodes from
        the beginning.
    threads : int, optional
        One decoder thread per ``threads`` (slice threads only); default:
        FFmpeg's frame threads, one per core.
    frame_threads : int, optional
        Frame threads instead (only frame threading, this many threads; see
        :func:`~napari_video_extract.core.frame_cursor.reader_frame_threads`),
        for decoders that have them (others: FFmpeg's automatic choice);
        ``threads`` then does not apply.
    skip : bool, optional
        Skip non-reference frames that are not wanted (default True; only
        for :data:`NONREF_EXACT_CODECS`). ``False`` decodes everything.
    stall_timeout : float, optional
        Seconds allowed for opening the file and for each read.
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
        frame_threads: int | None = None,
        skip: bool = True,
        stall_timeout: float | None = None,
    ) -> None:
        self.info = info
        self._frame_threads = None if frame_threads is None else max(1, int(frame_threads))
        pts = info.frame_pts
        self._bounds = (pts[1:] + pts[:-1]) / 2
        self._dts_only = "avi" in info.container.split(",")
        # AVI packets carry decoding-order stamps only: a packet's frame is unknown.
        self._can_skip = bool(skip) and info.codec in NONREF_EXACT_CODECS and not self._dts_only
        # None until a decoded frame shows whether the stream is interlaced
        # (then False: skip nothing; see the module notes). Kept across reopens.
        self._progressive: bool | None = None
        self._threads = None if threads is None else max(1, int(threads))
        self._timeout = stall_timeout
        self._container = None
        self._to_rgb = RGBConverter(info)
        self._decoded = 0
        self._aborted = False
        self._error = ""
        self._open()
        self._closed = False
        self.restart(start, targets, first=start if first is None else first, seek=seek)

    def _open(self) -> None:
        """(Re)open the file: positioned at its first packet, whatever its timestamp."""
        import av

        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        # Only the regular file the probe accepted, with the probe's whitelists.
        self._container = open_container(self.info.path, timeout=self._timeout)
        # The probe maps "0:V:0": the first video stream that is not a cover picture.
        self._stream = first_video_stream(self._container)
        if self._stream is None:
            raise DecodeError(self.info.path, "no video stream")
        if self._frame_threads is not None and _has_frame_threads(self._stream):
            self._stream.thread_type = "FRAME"
            self._stream.thread_count = self._frame_threads
        elif self._threads is None:
            # Frame threads decode ahead: stepping forward runs ~2x faster.
            self._stream.thread_type = "AUTO"
        else:
            self._stream.thread_type = "SLICE"
            self._stream.thread_count = self._threads
        self._codec = self._stream.codec_context
        self._skipping = False
        if interlaced_by_header(self._codec):
            self._progressive = False  # the header says interlaced: skip nothing
        self._time_base = self._stream.time_base
        self._tb = float(self._time_base)
        self._tb_ratio = (self._time_base.numerator, self._time_base.denominator)
        self._av_error = av.FFmpegError
        self._at_start = True

    def restart(
        self,
        start: int,
        targets: tuple[int, ...] | None = None,
        *,
        first: int,
        seek: bool | str = True,
    ) -> None:
        """Continue from keyframe ``start`` (a seek): give ``targets`` or frames from ``first``."""
        self.first = min(targets) if targets else first
        self._targets = None if targets is None else frozenset(int(i) for i in targets)
        # A packet's frame is at or after ``first`` exactly when its time is at
        # or past the (sorted) bound before ``first``: a comparison, no search.
        bounds, i = self._bounds, self.first - 1
        self._first_bound = -np.inf if i < 0 else float(bounds[i]) if i < len(bounds) else np.inf
        if seek == "earlier":
            start = self.info.keyframe_before(max(start - 1, 0))
        try:
            if not seek or start == 0:
                # The start is the first packet, whatever its timestamp: a seek
                # to time 0 lands mid-stream when timestamps start below 0 or
                # wrap (MPEG-TS), so rewind by opening the file again.
                if not self._at_start:
                    self._open()
            else:
                target = round(self.info.frame_pts[start] / self._time_base)
                self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except VideoOpenError as exc:
            raise DecodeError(self.info.path, f"reopening failed: {exc.reason}") from None
        except Exception as exc:  # av.FFmpegError, or a container closed under us
            raise DecodeError(self.info.path, f"seek failed: {exc}") from None
        self._at_start = False
        # After a seek, the keyframe must decode as one (see _check_keyframe).
        self._seek_start = start if seek and start > 0 else None
        self._first_after_seek = True
        self._packets = self._container.demux(self._stream)
        self._pending: list = []
        # libavcodec's guess_correct_pts state (reset by the flush of a seek).
        self._faulty_pts = self._faulty_dts = 0
        self._last_pts = self._last_dts = None
        self._dts_step = 1
        # AVI: the decoder's delay at the run's first frame (see avi_delay).
        self._run_delay: int | None = None

    def _best_effort_ticks(self, frame) -> int | None:
        """``best_effort_timestamp`` as libavcodec computes it (ffmpeg's frame pts).

        PyAV gives the reordered pts and the packet dts; files with packed
        B-frames (AVI) have non-monotonic pts and ffmpeg then uses the dts.
        """
        pts, dts = frame.pts, frame.dts
        if self._dts_only:
            # AVI stores one timestamp per packet, in decoding order; with
            # packed B-frames the decoder's reordered pts repeat and ffmpeg's
            # frames follow the packet clock (one packet, one frame). A frame
            # flushed at the end has no packet: it follows the previous one
            # by that frame's duration estimate, as in ffmpeg.
            if dts is None and self._last_dts is not None:
                dts = self._last_dts + duration_estimate(frame.duration or 0, self._dts_step)
            if dts is not None:
                if self._last_dts is not None and dts > self._last_dts:
                    self._dts_step = dts - self._last_dts
                self._last_dts = dts
                return dts
        if dts is not None:
            self._faulty_dts += self._last_dts is not None and dts <= self._last_dts
            self._last_dts = dts
        elif pts is not None:
            self._last_dts = pts
        if pts is not None:
            self._faulty_pts += self._last_pts is not None and pts <= self._last_pts
            self._last_pts = pts
        elif dts is not None:
            self._last_pts = dts
        if pts is not None and (self._faulty_pts <= self._faulty_dts or dts is None):
            return pts
        return dts

    def _wanted_packet(self, packet) -> bool:
        """True unless the frame of the packet (with a pts) is neither wanted nor a way to one."""
        seconds = packet.pts * self._tb
        if self._targets is not None:
            return int(self._bounds.searchsorted(seconds, "right")) in self._targets
        return seconds >= self._first_bound

    def _next_av_frame(self):
        while not self._pending:
            if self._aborted:
                return None
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except Exception as exc:  # a read error, or a container closed under us
                raise DecodeError(self.info.path, f"reading failed: {exc}") from None
            if self._can_skip:
                # Set before the packet is sent: the decoder reads it per packet.
                # No pts (a second field, an unstamped PES, the final flush):
                # the previous packet's choice. Not progressive (yet): none.
                if not self._progressive:
                    skip = False
                elif packet.pts is None:
                    skip = self._skipping
                else:
                    skip = not self._wanted_packet(packet)
                if skip != self._skipping:
                    self._codec.skip_frame = "NONREF" if skip else "DEFAULT"
                    self._skipping = skip
            try:
                self._pending = self._codec.decode(packet)
            except self._av_error:
                continue  # a damaged packet: the frame is missing, never replaced
            if not self._pending:
                continue  # most packets of a jump: skipped, or still in the threads
            self._decoded += len(self._pending)
            if self._progressive is not False and any(f.interlaced_frame for f in self._pending):
                self._progressive = False  # interlaced: skip nothing from now on
            elif self._progressive is None:
                self._progressive = True
        return self._pending.pop(0)

    @property
    def frames_decoded(self) -> int:
        """Frames the decoder really produced (skipped frames are not counted)."""
        return self._decoded

    @property
    def skips_frames(self) -> bool:
        """True if this source was opened to skip non-reference frames that are not wanted.

        It then skips them on progressive video only (see the module notes).
        """
        return self._can_skip

    def error_text(self) -> str:
        """Why the source ended early, for messages (empty if it did not)."""
        return self._error

    def abort(self) -> None:
        """Stop from any thread: the reading thread sees the end at the next packet."""
        self._aborted = True

    def __iter__(self) -> Iterator[DecodedFrame]:
        return self

    def __next__(self) -> DecodedFrame:
        if self._closed:
            raise StopIteration
        info = self.info
        while True:
            frame = self._next_av_frame()
            if frame is None:
                raise StopIteration
            ticks = self._best_effort_ticks(frame)
            if ticks is None:
                continue  # cannot be identified: never guess
            # Exact time, correctly rounded once: a damaged file's frame can
            # sit exactly on a bound (the midpoint between two frames two
            # ticks apart), where a float product one ulp off gave it to the
            # other frame. Python's int / int is correctly rounded (it is what
            # float(Fraction) does, without the ~10 us of a Fraction).
            num, den = self._tb_ratio
            index = int(self._bounds.searchsorted(ticks * num / den, "right"))
            if self._dts_only:
                self._run_delay = check_delay(self.info, index, self._codec, self._run_delay)
            if self._seek_start is not None:
                self._check_keyframe(index, frame)
            if index < self.first or (self._targets is not None and index not in self._targets):
                continue  # not wanted: not converted
            return DecodedFrame(
                index=index, time=float(info.frame_times[index]), image=self._to_rgb(frame)
            )

    def _check_keyframe(self, index: int, frame) -> None:
        """Refuse a seek whose keyframe the decoder does not decode as one.

        A damaged or forged index can flag a frame as a keyframe that is not:
        decoded after a seek, it and the frames after it come out without an
        error but without their references (garbage, not the frames a full
        decode gives). The bitstream says: the decoder's key-frame flag, or,
        where an intra picture starts afresh (MPEG-1/2, MPEG-4 part 2, ...),
        an intra-coded picture; a forged keyframe decodes as P or B. In
        H.264, HEVC, VP9 and AV1 an I-frame that is not a random access
        point (H.264: not IDR, no recovery-point SEI) does not clear the
        references: frames after it may refer past it, and a seek there gives
        them wrong without an error (an index that flags every I-frame as a
        keyframe, as some muxers can be told to). There only the decoder's
        key-frame flag counts. Such a run fails, and the caller's next try
        starts earlier (in the end from the start of the file).
        """
        first, self._first_after_seek = self._first_after_seek, False
        if index < self._seek_start:
            return  # a leading picture of an open GOP, shown before its keyframe
        # The first picture at or after the keyframe: the keyframe itself, or,
        # where the seek landed later or the decoder did not start there
        # (H.264's, at an I-frame it does not trust, may start at a later
        # one), the picture it did start from. Either must be a start.
        intra_ok = frame.pict_type == _PICT_I and self.info.codec not in _I_FRAMES_KEEP_REFERENCES
        if not (frame.key_frame or intra_ok):
            what = (
                "flagged as a keyframe"
                if index == self._seek_start
                else f"the first after keyframe {self._seek_start}"
            )
            raise SeekRefusedError(
                self.info.path, f"frame {index}, {what}, does not decode as one"
            )
        if first and index > self._seek_start and self.info.seeks_by_index:
            # Landed late in a file seeked by its index: the demuxer's index
            # is not the file's (an AVI cut before its idx1 has every chunk
            # read indexed as a keyframe), and a key picture can follow
            # frames decoded without their references.
            raise SeekRefusedError(
                self.info.path,
                f"the seek to keyframe {self._seek_start} began decoding at frame {index}",
            )
        self._seek_start = None

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._pending = []
        with contextlib.suppress(Exception):
            self._container.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PyAVStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

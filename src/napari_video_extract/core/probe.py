"""Probe a video: size, rotation, codec, frame rates and the real frame table.

The container header's frame count and duration are often missing or wrong
(AVI files with empty "drop" packets, variable frame rate, edit lists), so we
never trust them. Every fact comes from a structured source, never from
ffmpeg's log, where the file's own metadata (title, tags, chapters) is
printed too and can imitate any fact:

* the container and stream fields PyAV exposes (codec, coded size, rates,
  start time, demuxer name), and the display matrix of the first decoded
  frame (rotation), opened under the same whitelists as the ffmpeg CLI
  (:mod:`.container`);
* the timestamp of frame 0 as the ffmpeg executable decodes it: in
  MP4/MOV and Matroska/WebM (:data:`FIRST_PTS_FROM_PYAV`), the pts of the
  first frame PyAV decodes (with ``-copyts`` the executable adds no offset
  there); elsewhere, and when that frame has no pts of its own, from the
  executable's per-frame statistics on a pipe of their own
  (:mod:`.ffmpeg_probe`; MPEG-PS/TS,
  FLV...: the executable corrects 32/33-bit timestamps for wrapping on its
  own; AVI: PyAV gives its packets a pts one tick after their dts, and for
  H.264 its first frame's time is not the executable's);
* the frame table from the MP4/MOV sample index, the AVI ``idx1`` index or
  the Matroska/WebM block headers when they can be read (:mod:`.mp4index`,
  :mod:`.aviindex`, :mod:`.mkvindex`: milliseconds to a second for two
  hours of video), else from a run of the executable that
  lists every packet of the first video stream (:mod:`.ffmpeg_probe`).
  Empty and discarded packets are not frames, and sorting by presentation
  time gives display order; AVI stores no presentation times, and its
  frames are timed as the decoders time them
  (:func:`~napari_video_extract.core.aviindex.avi_frame_ticks`).

All of these are kept per file in the user's cache folder
(:mod:`.frame_index`): a file probed before is recognised by its path and
stat fields and probed again from that record alone, without opening a
decoder or running ffmpeg.

All timestamps in the engine are *absolute* stream timestamps (ffmpeg with
``-copyts``) internally; the public ``frame_times`` are relative to the first
frame, as users expect ("time 0" is the first picture).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from napari_video_extract.core import ffmpeg_probe
from napari_video_extract.core.container import first_video_stream, open_container
from napari_video_extract.core.errors import NotAVideoError, VideoOpenError
from napari_video_extract.core.frame_index import (
    FrameTable,
    ProbeRecord,
    file_identity,
    load_probe_record,
    store_probe_record,
)

# The container index readers are imported where a file is really read: a
# probe served from the frame-index sidecar does not pay for them.

__all__ = ["FIRST_PTS_FROM_PYAV", "VideoInfo", "probe"]

#: Seconds allowed per probe before we call the file broken (a hostile file
#: must never hang a batch). Scales a little with file size.
PROBE_TIMEOUT_BASE = 30.0
#: Demuxers (PyAV's ``container.format.name``) that store 64-bit timestamps
#: per frame: there the ffmpeg executable's frame 0 time (``-copyts``) is the
#: first decoded frame's pts, so the probe reads it in process instead of
#: running the executable (checked against it in ``tests/core/test_probe.py``).
#: Not AVI: PyAV gives its packets pts = dts + 1 tick, and for H.264 its
#: first frame says 0.04 s where the executable's frame 0 is at 0 (or 0.08
#: with B-frames): every frame after frame 0 would be misidentified.
FIRST_PTS_FROM_PYAV = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
#: Largest frame we decode (100 megapixels, e.g. 12000 x 8000): one RGB frame
#: is then 300 MB, and a hostile header cannot ask for more.
MAX_PIXELS = 100_000_000


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """What we know about one video after :func:`probe`.

    Attributes
    ----------
    path : Path
        Absolute path of the file.
    codec : str
        Video codec name as ffmpeg reports it (``h264``, ``vp8``...).
    width, height : int
        Size of the decoded image *as displayed*, i.e. after the rotation
        metadata is applied (a phone video shot upright is taller than wide).
    rotation : int
        Display rotation in degrees counter-clockwise (0, 90, 180 or 270).
    container_start : float
        The container's start time in seconds (what ``-ss`` is relative to).
    first_pts : float
        Absolute presentation timestamp (seconds) of the first decoded frame.
    frame_times : numpy.ndarray
        Presentation time of every frame in display order, in seconds relative
        to the first frame (``frame_times[0] == 0``). ``len(frame_times)`` is
        the real frame count.
    keyframes : numpy.ndarray
        Indices (into ``frame_times``) of the frames decodable on their own.
    duration : float
        From the first frame to the end of the last frame, in seconds.
    nominal_fps : float or None
        The frame rate the stream header declares (may be wrong).
    avg_fps : float
        Frames divided by duration.
    variable_frame_rate : bool
        True if the gaps between frames vary by more than 1 %.
    pix_fmt : str
        Decoder pixel format (``yuv420p``...).
    container : str
        ffmpeg's name of the container format (``mov,mp4,m4a,3gp,3g2,mj2``...).
    """

    path: Path
    codec: str
    width: int
    height: int
    rotation: int
    container_start: float
    first_pts: float
    frame_times: np.ndarray = field(repr=False)
    keyframes: np.ndarray = field(repr=False)
    duration: float
    nominal_fps: float | None
    avg_fps: float
    variable_frame_rate: bool
    pix_fmt: str = ""
    container: str = ""

    @property
    def frame_count(self) -> int:
        """The real number of frames (counted from packets, not the header)."""
        return len(self.frame_times)

    @property
    def frame_pts(self) -> np.ndarray:
        """Absolute presentation timestamps in seconds (the ``-copyts`` timeline)."""
        return self.frame_times + self.first_pts

    @property
    def seeks_by_index(self) -> bool:
        """True for containers whose seeks land exactly on an indexed keyframe
        (MP4/MOV, Matroska/WebM, AVI, FLV); MPEG-PS/TS seek by searching
        timestamps and may land elsewhere."""
        names = set(self.container.split(","))
        return bool(names & {"mov", "mp4", "matroska", "webm", "avi", "flv", "asf"})

    def keyframe_before(self, index: int) -> int:
        """Index of the last keyframe at or before frame ``index`` (0 if none)."""
        pos = int(np.searchsorted(self.keyframes, index, side="right")) - 1
        return int(self.keyframes[pos]) if pos >= 0 else 0

    def frame_window(self, index: int) -> tuple[float, float]:
        """Absolute time window ``[lo, hi)`` that identifies frame ``index``.

        The window runs from the midpoint with the previous frame to the
        midpoint with the next one, so a decoded frame whose timestamp is off
        by a rounding error is still recognised, and no other frame is.
        """
        pts = self.frame_pts
        gap_default = 1.0 / (self.avg_fps or 25.0)
        lo = pts[index] - (pts[index] - pts[index - 1]) / 2 if index > 0 else pts[0] - gap_default
        if index + 1 < len(pts):
            hi = pts[index] + (pts[index + 1] - pts[index]) / 2
        else:
            hi = pts[index] + gap_default
        return float(lo), float(hi)

    def as_dict(self) -> dict:
        """A JSON-friendly summary (no per-frame arrays)."""
        return {
            "path": str(self.path),
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "pix_fmt": self.pix_fmt,
            "container": self.container,
            "duration": round(self.duration, 6),
            "start_time": round(self.container_start, 6),
            "first_frame_pts": round(self.first_pts, 6),
            "frame_count": self.frame_count,
            "keyframe_count": len(self.keyframes),
            "nominal_fps": None if self.nominal_fps is None else round(self.nominal_fps, 6),
            "avg_fps": round(self.avg_fps, 6),
            "variable_frame_rate": self.variable_frame_rate,
        }


def _rate(value) -> float | None:
    """A stream rate (Fraction or None) as a positive float, or None."""
    try:
        rate = float(value) if value is not None else 0.0
    except (TypeError, ZeroDivisionError):
        return None
    return rate if rate > 0 else None


def _read_header(path: Path, timeout: float) -> dict:
    """Container and first real video stream, from PyAV's fields (never the log).

    Decodes the stream up to its first frame: the display matrix (rotation)
    reaches us as that frame's side data, its timestamp is frame 0's (in the
    containers of :data:`FIRST_PTS_FROM_PYAV`), and a frame proves the stream
    decodes.
    """
    import av

    container = open_container(path, timeout=timeout)
    try:
        stream = first_video_stream(container)
        if stream is None:
            raise NotAVideoError(path, "no video stream (audio-only or not a video file)")
        codec = stream.codec_context
        width, height = int(codec.width or 0), int(codec.height or 0)
        if width * height > MAX_PIXELS or min(width, height) <= 0:
            # A hostile header must not make us allocate gigabytes per frame.
            raise VideoOpenError(
                path, f"frame size {width}x{height} is not supported (max {MAX_PIXELS:,} pixels)"
            )
        start = container.start_time
        header = {
            "stream_index": int(stream.index),
            "codec": codec.codec.canonical_name,
            "coded_size": (width, height),
            "fps": _rate(stream.average_rate) or _rate(stream.base_rate),
            "pix_fmt": codec.format.name if codec.format is not None else "",
            "container": container.format.name,
            "container_start": start / 1e6 if start is not None else 0.0,
        }
        frame = _first_frame(container, stream, av.FFmpegError)
        if frame is None:
            raise NotAVideoError(path, "no decodable video frame")
        header["rotation"] = round(float(frame.rotation)) % 360
        # Only a pts of its own is the executable's frame 0 time (see
        # FIRST_PTS_FROM_PYAV); without one the executable is asked.
        pts = frame.pts
        header["first_pts"] = None if pts is None else float(pts * stream.time_base)
        if not header["pix_fmt"] and frame.format is not None:
            header["pix_fmt"] = frame.format.name
        return header
    except av.FFmpegError as exc:
        raise VideoOpenError(path, f"reading failed: {exc.strerror or exc}") from None
    finally:
        container.close()


def _first_frame(container, stream, av_error):
    """The first frame the stream decodes to, or None (damaged packets are skipped)."""
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av_error:
            continue
        if frames:
            return frames[0]
    return None


def _median(values: np.ndarray, *, in_place: bool = False) -> float:
    """``np.median`` of a non-empty 1-D array, without importing ``numpy.ma``.

    ``np.median`` imports ``numpy.ma`` on first use (25 ms here), a quarter of
    what a probe from the sidecar may take. ``in_place`` partitions
    ``values`` itself (its order changes) instead of a copy.
    """
    n = len(values)
    k = n // 2
    part = values if in_place else values.copy()
    if n % 2:
        part.partition(k)
        return float(part[k])
    part.partition([k - 1, k])
    return float((part[k - 1] + part[k]) / 2)


def _frame_table(path: Path, header: dict, timeout: float) -> FrameTable:
    """The frame table: from the MP4/MOV or AVI index or the Matroska block
    headers if they can be read, else from packets."""
    from napari_video_extract.core.aviindex import read_avi_frame_table
    from napari_video_extract.core.mkvindex import read_mkv_frame_table
    from napari_video_extract.core.mp4index import read_mp4_frame_table

    stream_index = header["stream_index"]
    if header["container"] == "avi":
        avi = read_avi_frame_table(path, stream=stream_index)
        if avi is not None:
            return avi
    if header["container"] == "matroska,webm":
        mkv = read_mkv_frame_table(path, stream=stream_index, codec=header["codec"])
        if mkv is not None:
            return mkv
    table = read_mp4_frame_table(path, track=stream_index)
    if table is not None:
        return FrameTable(
            table.ticks, table.keyframe, table.durations, Fraction(1, table.timescale)
        )
    return FrameTable(*ffmpeg_probe.list_packets(path, timeout))


def _read_record(path: Path, timeout: float, *, cache: bool) -> ProbeRecord:
    """What the probe needs from ``path``: its cached record, else read and cached."""
    if cache:
        record = load_probe_record(path)
        if record is not None:
            return record
    before = file_identity(path)
    header = _read_header(path, timeout)
    first_pts = header["first_pts"]
    if first_pts is None or header["container"] not in FIRST_PTS_FROM_PYAV:
        first_pts = ffmpeg_probe.first_frame_pts(path, timeout)
    table = _frame_table(path, header, timeout)
    record = ProbeRecord(
        table=table,
        stream_index=header["stream_index"],
        codec=header["codec"],
        pix_fmt=header["pix_fmt"],
        container=header["container"],
        coded_size=header["coded_size"],
        fps=header["fps"],
        container_start=header["container_start"],
        rotation=header["rotation"],
        first_pts=first_pts,
    )
    if cache and len(table.ticks):
        store_probe_record(path, record, before=before)
    return record


def probe(
    path: str | os.PathLike, *, timeout: float | None = None, cache: bool = True
) -> VideoInfo:
    """Probe a video file without decoding more than its first frame.

    Parameters
    ----------
    path : str or PathLike
        The video file (any container/codec the bundled ffmpeg decodes).
    timeout : float, optional
        Seconds before giving up; default grows with the file size.
    cache : bool
        Reuse (and keep) the probe's record of this file in the user's cache
        folder (:mod:`~napari_video_extract.core.frame_index`): a file probed
        before, unchanged (same path, size, times and inode), is not opened
        by a decoder again.

    Returns
    -------
    VideoInfo

    Raises
    ------
    VideoOpenError
        The file does not exist, is not a regular file, is empty, or ffmpeg
        cannot open it (the reason is ffmpeg's own, in one line).
    NotAVideoError
        The file has no video stream or no decodable frame.
    """
    path = Path(os.path.abspath(os.fspath(path)))
    if not path.exists():
        raise VideoOpenError(path, "no such file")
    if path.is_dir():
        raise VideoOpenError(path, "is a folder, not a video file")
    if not path.is_file():
        raise VideoOpenError(path, "not a regular file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise VideoOpenError(path, f"cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise VideoOpenError(path, "empty file (0 bytes)")
    if timeout is None:
        timeout = PROBE_TIMEOUT_BASE + size / 50e6  # 50 MB/s worst-case disk
    record = _read_record(path, timeout, cache=cache)
    table = record.table
    ticks, keys, durations, time_base = (
        table.ticks,
        table.keyframe,
        table.durations,
        table.time_base,
    )
    if len(ticks) == 0:
        raise NotAVideoError(path, "no video frames in the stream")
    if record.container == "avi":
        from napari_video_extract.core.aviindex import avi_frame_ticks

        # AVI's ticks are the packets' slots: the frames' times are the slots
        # of the packets that give them out (the decoder's delay later).
        frame_ticks = avi_frame_ticks(ticks, round(record.first_pts / float(time_base)))
        if frame_ticks is not None:
            ticks = frame_ticks

    # Already in display order without repeats (no B-frames): nothing to sort
    # or drop (each pass over a two-hour table costs milliseconds).
    if not (np.diff(ticks) > 0).all():
        order = np.argsort(ticks, kind="stable")
        ticks, keys, durations = ticks[order], keys[order], durations[order]
        # Two packets with one timestamp would be one frame on screen; keep the first.
        keep = np.concatenate([[True], np.diff(ticks) > 0])
        ticks, keys, durations = ticks[keep], keys[keep], durations[keep]
    tb = float(time_base)
    rel = (ticks - ticks[0]).astype(np.float64)
    rel *= tb
    keyframes = np.flatnonzero(keys)
    if len(keyframes) == 0 or keyframes[0] != 0:
        # The first frame is decodable by construction (we just decoded it).
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)

    gaps = np.diff(rel)
    spread = float(gaps.max() - gaps.min()) if len(gaps) > 1 else 0.0
    median_gap = _median(gaps, in_place=True) if len(gaps) else 0.0  # reorders gaps
    last_duration = float(durations[-1]) * tb if durations[-1] > 0 else median_gap
    nominal = record.fps
    if last_duration <= 0:
        last_duration = 1.0 / nominal if nominal else 0.04
    duration = float(rel[-1]) + last_duration
    # Timestamps are rounded to the time base (WebM: 1 ms), so a constant
    # 24 fps stream shows 41 and 42 ms gaps; only more than that is variable.
    tolerance = max(0.01 * median_gap, 1.5 * tb)
    vfr = spread > tolerance

    coded = record.coded_size
    rotation = record.rotation
    width, height = coded if rotation % 180 == 0 else (coded[1], coded[0])
    return VideoInfo(
        path=path,
        codec=record.codec,
        width=int(width),
        height=int(height),
        rotation=int(rotation),
        container_start=record.container_start,
        first_pts=record.first_pts,
        frame_times=rel,
        keyframes=keyframes.astype(np.int64),
        duration=duration,
        nominal_fps=nominal,
        avg_fps=len(rel) / duration if duration > 0 else (nominal or 0.0),
        variable_frame_rate=vfr,
        pix_fmt=record.pix_fmt,
        container=record.container,
    )

"""Probe a video: size, rotation, codec, frame rates and the real frame table.

The container header's frame count and duration are often missing or wrong
(AVI files with empty "drop" packets, variable frame rate, edit lists), so we
never trust them. One short ffmpeg run decodes only the first frame (header,
rotation, and the decoder's timestamp of frame 0). The frame table comes from
the MP4/MOV sample index when there is one (:mod:`.mp4index`, milliseconds
whatever the length), else from a second run that lists every packet of the
first video stream (``-c copy -f framecrc``: nothing is decoded). Empty and
discarded packets are not frames, and sorting by presentation time gives
display order.

All timestamps in the engine are *absolute* stream timestamps (ffmpeg with
``-copyts``) internally; the public ``frame_times`` are relative to the first
frame, as users expect ("time 0" is the first picture).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from napari_video_extract.core.errors import NotAVideoError, VideoOpenError
from napari_video_extract.core.ffmpeg import input_args, last_error_line, run_ffmpeg
from napari_video_extract.core.mp4index import read_mp4_frame_table

__all__ = ["VideoInfo", "probe"]

_PKT_FLAG_KEY = 0x1
_PKT_FLAG_DISCARD = 0x4
_NOPTS = -9223372036854775808

#: Seconds allowed per probe before we call the file broken (a hostile file
#: must never hang a batch). Scales a little with file size.
PROBE_TIMEOUT_BASE = 30.0
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


_INPUT_RE = re.compile(r"Input #0, (.+?), from ")
_DURATION_RE = re.compile(r"Duration: [^,]*, start: (-?[\d.]+)")
_VIDEO_RE = re.compile(r"Stream #0:(\d+)[^:]*: Video: (\w+)(.*)")
# Sizes never start with 0: that skips codec tags such as "[2][0][0][0] / 0x0002".
_SIZE_RE = re.compile(r"\b([1-9]\d{0,4})x([1-9]\d{0,4})\b")
_FPS_RE = re.compile(r"([\d.]+)(k?) fps")
_TBR_RE = re.compile(r"([\d.]+)(k?) tbr")
_ROT_RE = re.compile(r"rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_SHOWINFO_PTS_RE = re.compile(r"pts_time:\s*(-?[\d.]+(?:e[-+]?\d+)?)")
_TB_RE = re.compile(rb"^#tb 0: (\d+)/(\d+)", re.MULTILINE)


def _parse_rate(match: re.Match | None) -> float | None:
    if match is None:
        return None
    value = float(match.group(1)) * (1000 if match.group(2) else 1)
    return value if value > 0 else None


def _parse_header(stderr: str, path: Path) -> dict:
    """Codec, coded size, rates and rotation of the first real video stream."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = _VIDEO_RE.search(line)
        if m is None or "attached pic" in line:
            continue
        if "Stream #0:" in line and "->" in line:
            continue  # the "Stream mapping" section
        rest = m.group(3)
        size = _SIZE_RE.search(rest)
        pix = rest.split(",")[1].strip().split("(")[0] if rest.count(",") >= 1 else ""
        rotation = 0
        # Side data lines follow the stream line, indented, until the next stream.
        for follow in lines[i + 1 : i + 12]:
            if "Stream #" in follow:
                break
            r = _ROT_RE.search(follow)
            if r:
                rotation = round(float(r.group(1))) % 360
        return {
            "stream_index": int(m.group(1)),
            "codec": m.group(2),
            "coded_size": (int(size.group(1)), int(size.group(2))) if size else None,
            "fps": _parse_rate(_FPS_RE.search(rest)) or _parse_rate(_TBR_RE.search(rest)),
            "rotation": rotation,
            "pix_fmt": pix,
        }
    raise NotAVideoError(path, "no video stream (audio-only or not a video file)")


def _parse_packets(framecrc: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, Fraction]:
    """Presentation ticks, keyframe flags and durations of real frame packets.

    ``framecrc`` lines are ``stream, dts, pts, duration, size, crc[, F=0xFLAGS]``;
    ``F=`` is printed only when the flags differ from "keyframe".
    """
    tb_match = _TB_RE.search(framecrc)
    time_base = (
        Fraction(int(tb_match.group(1)), int(tb_match.group(2))) if tb_match else Fraction(1, 1)
    )
    rows = [line.split(b",") for line in framecrc.split(b"\n") if line[:2] == b"0,"]
    rows = [r for r in rows if len(r) >= 6]
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.astype(bool), empty, time_base
    values = np.array([r[1:5] for r in rows], dtype=np.int64)  # dts, pts, duration, size
    # Column 7 may be side data ("S=1, ...") instead of flags: only "F=" is flags.
    flags = np.array(
        [
            int(r[6].strip()[4:], 16)
            if len(r) > 6 and r[6].strip()[:2] == b"F="
            else _PKT_FLAG_KEY
            for r in rows
        ],
        dtype=np.int64,
    )
    dts, pts, durations, sizes = values.T
    ticks = np.where(pts != _NOPTS, pts, dts)
    # "Drop" packets of AVI files (size 0) and edit-list discards are not frames.
    real = (sizes > 0) & ((flags & _PKT_FLAG_DISCARD) == 0) & (ticks != _NOPTS)
    return ticks[real], (flags[real] & _PKT_FLAG_KEY) > 0, durations[real], time_base


def _scan_packets(
    path: Path, timeout: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Fraction]:
    """List every packet of the first real video stream with ffmpeg (no decoding)."""
    args = [
        "-copyts",
        *input_args(path),
        "-map",
        "0:V:0",
        "-c",
        "copy",
        "-f",
        "framecrc",
        "pipe:1",
    ]
    return _parse_packets(_run_with_limit(path, args, timeout, "listing packets").stdout)


def _run_with_limit(
    path: Path, args: list[str], timeout: float, what: str
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg; a run over ``timeout`` seconds is this file's error, never a hang."""
    try:
        return run_ffmpeg(args, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VideoOpenError(path, f"{what} took longer than {timeout:.0f} s") from None


def _frame_table(
    path: Path, stream_index: int, timeout: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Fraction]:
    """The frame table from the MP4/MOV index if there is one, else from packets."""
    table = read_mp4_frame_table(path, track=stream_index)
    if table is not None:
        return table.ticks, table.keyframe, table.durations, Fraction(1, table.timescale)
    return _scan_packets(path, timeout)


def probe(path: str | os.PathLike, *, timeout: float | None = None) -> VideoInfo:
    """Probe a video file without decoding more than its first frame.

    Parameters
    ----------
    path : str or PathLike
        The video file (any container/codec the bundled ffmpeg decodes).
    timeout : float, optional
        Seconds before giving up; default grows with the file size.

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
    # Decode just the first frame: the header (codec, size, rotation) and the
    # decoder's timestamp of frame 0, and proof that the stream decodes.
    args = [
        "-copyts",
        *input_args(path),
        "-map",
        "0:V:0",
        "-frames:v",
        "1",
        "-vf",
        "showinfo",
        "-f",
        "null",
        "-",
    ]
    proc = _run_with_limit(path, args, timeout, "probing")
    stderr = proc.stderr.decode("utf-8", "replace")
    if "Video:" not in stderr:
        if "Input #0" in stderr:
            raise NotAVideoError(path, "no video stream (audio-only or not a video file)")
        reason = last_error_line(stderr, path)
        if "Invalid argument" in reason or "Invalid data" in reason:
            reason = "not a video file ffmpeg can read (unknown or unsupported format)"
        raise VideoOpenError(path, reason)
    header = _parse_header(stderr, path)
    first = _SHOWINFO_PTS_RE.search(stderr)
    if first is None:
        raise NotAVideoError(path, "no decodable video frame (" + last_error_line(stderr) + ")")
    ticks, keys, durations, time_base = _frame_table(path, header["stream_index"], timeout)
    if len(ticks) == 0:
        raise NotAVideoError(path, "no video frames in the stream")

    order = np.argsort(ticks, kind="stable")
    ticks, keys, durations = ticks[order], keys[order], durations[order]
    # Two packets with one timestamp would be one frame on screen; keep the first.
    keep = np.concatenate([[True], np.diff(ticks) > 0])
    ticks, keys, durations = ticks[keep], keys[keep], durations[keep]
    tb = float(time_base)
    rel = (ticks - ticks[0]).astype(np.float64) * tb
    keyframes = np.flatnonzero(keys)
    if len(keyframes) == 0 or keyframes[0] != 0:
        # The first frame is decodable by construction (we just decoded it).
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)

    gaps = np.diff(rel)
    median_gap = float(np.median(gaps)) if len(gaps) else 0.0
    last_duration = float(durations[-1]) * tb if durations[-1] > 0 else median_gap
    nominal = header["fps"]
    if last_duration <= 0:
        last_duration = 1.0 / nominal if nominal else 0.04
    duration = float(rel[-1]) + last_duration
    # Timestamps are rounded to the time base (WebM: 1 ms), so a constant
    # 24 fps stream shows 41 and 42 ms gaps; only more than that is variable.
    tolerance = max(0.01 * median_gap, 1.5 * tb)
    vfr = bool(len(gaps) > 1 and (gaps.max() - gaps.min()) > tolerance)

    coded = header["coded_size"] or (0, 0)
    if coded[0] * coded[1] > MAX_PIXELS or min(coded) <= 0:
        # A hostile header must not make us allocate gigabytes per frame.
        raise VideoOpenError(
            path, f"frame size {coded[0]}x{coded[1]} is not supported (max {MAX_PIXELS:,} pixels)"
        )
    rotation = header["rotation"]
    width, height = coded if rotation % 180 == 0 else (coded[1], coded[0])
    container_start = 0.0
    m = _DURATION_RE.search(stderr)
    if m:
        container_start = float(m.group(1))
    return VideoInfo(
        path=path,
        codec=header["codec"],
        width=int(width),
        height=int(height),
        rotation=int(rotation),
        container_start=container_start,
        first_pts=float(first.group(1)),
        frame_times=rel,
        keyframes=keyframes.astype(np.int64),
        duration=duration,
        nominal_fps=nominal,
        avg_fps=len(rel) / duration if duration > 0 else (nominal or 0.0),
        variable_frame_rate=vfr,
        pix_fmt=header["pix_fmt"],
        container=m_input.group(1) if (m_input := _INPUT_RE.search(stderr)) else "",
    )

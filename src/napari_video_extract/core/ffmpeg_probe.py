"""What the probe asks the bundled ffmpeg executable: a packet listing, frame 0's time.

Where no container index can be read (:mod:`.mp4index`, :mod:`.aviindex`,
:mod:`.mkvindex`), :func:`list_packets` lists every packet of the first
real video stream (``-c copy -f framecrc`` on stdout: nothing is decoded,
and no metadata is printed there). Where PyAV's first frame is not the
executable's frame 0 (see :data:`~napari_video_extract.core.probe.FIRST_PTS_FROM_PYAV`),
:func:`first_frame_pts` decodes one frame and reads its timestamp from
ffmpeg's per-frame statistics on a pipe of their own. Neither reads
ffmpeg's log, where the file's own metadata is printed too and can imitate
any fact; every run has a time limit, and a run over it is the file's
error, never a hang.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_video_extract.core.errors import NotAVideoError, VideoOpenError
from napari_video_extract.core.ffmpeg import (
    frame_stats_args,
    input_args,
    last_error_line,
    parse_frame_stats,
    run_ffmpeg,
)

if TYPE_CHECKING:
    import subprocess

__all__ = ["first_frame_pts", "list_packets", "parse_packets"]

_PKT_FLAG_KEY = 0x1
_PKT_FLAG_CORRUPT = 0x2
_PKT_FLAG_DISCARD = 0x4
_NOPTS = -9223372036854775808

_TB_RE = re.compile(rb"^#tb 0: (\d+)/(\d+)", re.MULTILINE)


def parse_packets(framecrc: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, Fraction]:
    """Presentation ticks, keyframe flags and durations of real frame packets.

    ``framecrc`` lines are ``stream, dts, pts, duration, size, crc[, F=0xFLAGS]``;
    ``F=`` is printed only when the flags differ from "keyframe".

    Parameters
    ----------
    framecrc : bytes
        ffmpeg's ``framecrc`` output for one stream.

    Returns
    -------
    ticks, keyframe, durations : numpy.ndarray
        Per packet that is a frame (not empty, not discarded), in file order:
        the pts (the dts where there is none), the keyframe flag, the duration.
    time_base : fractions.Fraction
        Seconds per tick.
    """
    return _parse(framecrc)[:4]


def _parse(framecrc: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, Fraction, np.ndarray]:
    """:func:`parse_packets`, and which of those packets were read only in part."""
    tb_match = _TB_RE.search(framecrc)
    time_base = (
        Fraction(int(tb_match.group(1)), int(tb_match.group(2))) if tb_match else Fraction(1, 1)
    )
    rows = [line.split(b",") for line in framecrc.split(b"\n") if line[:2] == b"0,"]
    rows = [r for r in rows if len(r) >= 6]
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.astype(bool), empty, time_base, empty.astype(bool)
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
    flags = flags[real]
    keys, corrupt = (flags & _PKT_FLAG_KEY) > 0, (flags & _PKT_FLAG_CORRUPT) > 0
    return ticks[real], keys, durations[real], time_base, corrupt


def list_packets(
    path: Path, timeout: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Fraction]:
    """List every packet of the first real video stream with ffmpeg (no decoding).

    Parameters
    ----------
    path : Path
        The video file (the probe has checked it is a regular file).
    timeout : float
        Seconds allowed for the run.

    Returns
    -------
    tuple
        As :func:`parse_packets`.

    Raises
    ------
    VideoOpenError
        The run took longer than ``timeout``.
    """
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
    listing = _run_with_limit(path, args, timeout, "listing packets").stdout
    ticks, keys, durations, time_base, corrupt = _parse(listing)
    if len(ticks) and corrupt[-1]:
        ticks, keys, durations = _without_a_cut_end(
            path, ticks, keys, durations, time_base, timeout
        )
    return ticks, keys, durations, time_base


def _without_a_cut_end(
    path: Path,
    ticks: np.ndarray,
    keys: np.ndarray,
    durations: np.ndarray,
    time_base: Fraction,
    timeout: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The packets of a file cut short: the last one, read in part, only if it is a frame.

    A cut packet is never a keyframe (what it lacks, the decoder conceals
    from the frames before, which a seek there does not have), and a frame
    only if the decoder makes one of it (:mod:`.cut_packet`).
    """
    from napari_video_extract.core.cut_packet import cut_packet_gives_a_frame

    keys = keys.copy()
    keys[-1] = False
    before = np.flatnonzero(keys)
    start = int(before[-1]) if len(before) and before[-1] > 0 else None
    seek = None if start is None else float(ticks[start] * time_base)
    after = 0 if start is None else len(ticks) - start
    if cut_packet_gives_a_frame(path, seek=seek, packets_after=after, timeout=timeout):
        return ticks, keys, durations
    return ticks[:-1], keys[:-1], durations[:-1]


def _run_with_limit(
    path: Path, args: list[str], timeout: float, what: str, *, pass_fds: tuple[int, ...] = ()
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg; a run over ``timeout`` seconds is this file's error, never a hang."""
    import subprocess

    try:
        return run_ffmpeg(args, timeout=timeout, pass_fds=pass_fds)
    except subprocess.TimeoutExpired:
        raise VideoOpenError(path, f"{what} took longer than {timeout:.0f} s") from None


def first_frame_pts(path: Path, timeout: float) -> float:
    """Timestamp of frame 0 as the ffmpeg executable decodes it (``-copyts``).

    The ffmpeg frame source identifies frames on that executable's timeline,
    so frame 0 is timed by it too where its value may differ from the first
    frame's own (see :data:`~napari_video_extract.core.probe.FIRST_PTS_FROM_PYAV`):
    through ffmpeg's per-frame stats on a pipe of their own
    (:func:`~napari_video_extract.core.ffmpeg.frame_stats_args`), never its log.

    Parameters
    ----------
    path : Path
        The video file (the probe has checked it is a regular file).
    timeout : float
        Seconds allowed for the run.

    Returns
    -------
    float
        Frame 0's absolute presentation time in seconds.

    Raises
    ------
    VideoOpenError
        The run took longer than ``timeout``.
    NotAVideoError
        No frame was decoded, or it has no timestamp.
    """
    read_fd, write_fd = os.pipe()
    try:
        args = [
            "-copyts",
            *input_args(path),
            "-map",
            "0:V:0",
            "-frames:v",
            "1",
            *frame_stats_args(write_fd),
            "-f",
            "null",
            "-",
        ]
        try:
            # One frame, one short line: it fits in the pipe while ffmpeg runs.
            proc = _run_with_limit(path, args, timeout, "probing", pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as fh:
            read_fd = -1
            lines = fh.read(1 << 16).splitlines()
    finally:
        if read_fd >= 0:
            os.close(read_fd)
    stats = parse_frame_stats(lines[0]) if lines else None
    if stats is None or stats.pts is None:
        reason = last_error_line(proc.stderr, path) if proc.returncode else "no timestamp"
        raise NotAVideoError(path, f"no decodable video frame ({reason})")
    return stats.pts

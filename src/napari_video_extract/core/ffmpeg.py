"""The one place that builds ffmpeg command lines.

We only ever run the ffmpeg binary that imageio-ffmpeg ships (no system ffmpeg
is assumed). Video files are untrusted input, so every input is passed as

* an absolute ``file:`` URL, so a name like ``-i``, ``http:x.mp4`` or
  ``concat:a|b`` is a plain file name and never an option or a protocol;
* with ``-protocol_whitelist file`` so nothing can reach the network;
* with ``-format_whitelist`` limited to real video containers, so a playlist
  (HLS, concat, ffconcat, image sequence...) disguised as ``.mp4`` cannot make
  ffmpeg open other local files.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "ALLOWED_DEMUXERS",
    "FrameStats",
    "ffmpeg_exe",
    "frame_stats_args",
    "input_args",
    "parse_frame_stats",
    "run_ffmpeg",
]

#: Demuxers we let ffmpeg use for an input. Playlist-like demuxers (hls, dash,
#: concat, image2, ...) that can open further files are deliberately absent.
ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "avi",
    "matroska,webm",
    "mpeg",
    "mpegts",
    "mpegvideo",
    "m4v",
    "h264",
    "hevc",
    "flv",
    "asf",
    "ogg",
    "nut",
    "ivf",
    "mxf",
    "dv",
    "gif",
    "yuv4mpegpipe",
    "rm",
    "obu",
    "av1",
)


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg executable bundled with imageio-ffmpeg.

    ``IMAGEIO_FFMPEG_EXE`` is honoured, as imageio-ffmpeg documents.
    """
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def input_args(path: str | os.PathLike, *, seek: float | None = None) -> list[str]:
    """ffmpeg arguments that open ``path`` as a local video file, safely.

    Parameters
    ----------
    path : str or PathLike
        The video file. It is made absolute and passed as a ``file:`` URL.
    seek : float, optional
        Input seek position in seconds, relative to the container's start
        time (ffmpeg's ``-ss`` input option: it seeks to the keyframe before
        this time and drops decoded frames before it).

    Returns
    -------
    list of str
    """
    url = "file:" + os.path.abspath(os.fspath(path))
    args = [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        ",".join(ALLOWED_DEMUXERS),
    ]
    if seek is not None and seek > 0:
        args += ["-ss", f"{seek:.6f}"]
    return [*args, "-i", url]


def base_args() -> list[str]:
    """Leading arguments for every run: quiet banner, no stdin, no prompts.

    Only errors are logged: no fact is read from the log, and at the default
    level it also lists the file's own metadata (title, tags, chapters), which
    must not end up in an error message as if it were ffmpeg's reason.
    """
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def run_ffmpeg(
    args: list[str],
    *,
    timeout: float | None = None,
    check: bool = False,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg to completion and capture stdout and stderr (bytes).

    Parameters
    ----------
    args : list of str
        Arguments after the executable (use :func:`input_args` for inputs).
    timeout : float, optional
        Seconds before the process is killed (``subprocess.TimeoutExpired``).
    check : bool
        Raise ``subprocess.CalledProcessError`` on a non-zero exit.
    pass_fds : tuple of int
        File descriptors the process inherits (e.g. for :func:`frame_stats_args`).
    """
    import subprocess  # here: importing this module (the reader's probe) must not pay for it

    return subprocess.run(
        [*base_args(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=check,
        pass_fds=pass_fds,
    )


class FrameStats(NamedTuple):
    """What ffmpeg reports about one frame it sends to the encoder.

    Attributes
    ----------
    decoded : int
        How many frames the decoder had produced before this one (ffmpeg's
        ``ni``, counted from where this process started decoding).
    pts : float or None
        The frame's presentation time in seconds (``-copyts`` timeline: the
        decoder's best-effort timestamp); None if the frame has none.
    """

    decoded: int
    pts: float | None


#: How ffmpeg prints a missing timestamp (AV_NOPTS_VALUE, or INT64_MAX for "unavailable").
_NO_PTS = (-(2**63), 2**63 - 1)


def frame_stats_args(fd: int) -> list[str]:
    """Output options that write one :class:`FrameStats` line per frame to ``fd``.

    ffmpeg's per-frame encoder statistics (``-stats_enc_pre``) go to a pipe of
    their own and hold only numbers ffmpeg computes (decoder frame number,
    timestamp, time base): unlike the log, a file's metadata cannot appear in
    them. The encoder keeps the filter's time base (the stream's, as no filter
    we use changes it), so the timestamp is the one ``select`` and ``showinfo``
    see, not rounded to a frame rate. Pass ``fd`` to the process (``pass_fds``).
    """
    return [
        "-enc_time_base:v",
        "filter",
        "-stats_enc_pre",
        f"pipe:{int(fd)}",
        "-stats_enc_pre_fmt",
        "{ni} {pts} {tb}",
    ]


def parse_frame_stats(line: bytes) -> FrameStats | None:
    """One line written through :func:`frame_stats_args`; None if malformed."""
    parts = line.split()
    if len(parts) != 3:
        return None
    try:
        decoded, ticks = int(parts[0]), int(parts[1])
        time_base = Fraction(parts[2].decode("ascii"))
    except (ValueError, ZeroDivisionError, UnicodeDecodeError):
        return None
    if ticks in _NO_PTS or time_base <= 0:
        return FrameStats(decoded, None)
    return FrameStats(decoded, float(ticks * time_base))


#: ffmpeg lines that are consequences of an error or statistics, never its cause
#: (the progress line "frame= 0 fps=0.0 ..." is printed last even on failure).
_NOT_A_CAUSE = (
    "Error opening input file",
    "Error opening input files",
    "Conversion failed",
    "frame=",
    "size=",
    "video:",
    "Task finished with error code",
    "Terminating thread with return code",
    "Could not open encoder before EOF",
    "Cannot determine format of input",
    "Nothing was written into output file",
    "Output file is empty",
    "Decode error rate",
    "Error sending frames to consumers",
    "Error while filtering",
    # Informational lines (stream list, metadata), printed when ffmpeg found
    # nothing to complain about: not a reason either.
    "Input #",
    "Output #",
    "Stream #",
    "Stream mapping",
    "Duration:",
    "Metadata:",
    "encoder",
    "handler_name",
    "major_brand",
    "minor_version",
    "compatible_brands",
    "Side data:",
    "Press [q]",
    "No filtered frames for output stream",
    "config in time_base",
    "config out time_base",
)


def _strip_context(line: str) -> str:
    """Drop ffmpeg's ``[component @ 0x...]`` prefixes (there can be several)."""
    while line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return line


def last_error_line(stderr: bytes | str, path: str | os.PathLike | None = None) -> str:
    """The most telling line of ffmpeg's stderr, for a one-line error message."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [_strip_context(ln.strip()) for ln in text.splitlines() if ln.strip()]
    # ffmpeg prints the real cause before its generic "Error opening input files"
    # and its statistics; take the last line that is neither.
    for line in reversed(lines):
        if line and not line.startswith(_NOT_A_CAUSE):
            reason = line
            break
    else:
        reason = "ffmpeg gave no reason"
    if path is not None:
        # ffmpeg often repeats the URL; the caller already names the file.
        for name in (f"file:{os.path.abspath(os.fspath(path))}", os.fspath(path)):
            reason = reason.replace(name + ": ", "").replace(name, "the file")
    return reason[:300]

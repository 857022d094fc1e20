"""Open a video file in process with PyAV, under the same rules as the ffmpeg CLI.

Video files are untrusted input. Like :func:`~napari_video_extract.core.ffmpeg.input_args`
for the ffmpeg executable, :func:`open_container` opens

* an absolute ``file:`` URL, so a name like ``concat:a|b.mp4`` or ``http:x.mp4``
  is a plain file name, never a protocol;
* with ``protocol_whitelist=file`` so nothing can reach the network;
* with ``format_whitelist`` limited to :data:`~napari_video_extract.core.ffmpeg.ALLOWED_DEMUXERS`
  (libavformat refuses any other demuxer while opening, before it reads the
  header), and the demuxer it picked is checked against that list again;
* with a time limit on opening and on every read (PyAV's interrupt callback).

Facts about the file are taken from the fields PyAV exposes (stream, codec,
frame), never from ffmpeg's log, which also prints the file's own metadata.
PyAV is imported only when a file is opened.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from napari_video_extract.core.errors import VideoOpenError
from napari_video_extract.core.ffmpeg import ALLOWED_DEMUXERS

__all__ = ["first_video_stream", "open_container"]


def open_container(path: str | os.PathLike, *, timeout: float | None = None):
    """Open a local video file for demuxing with PyAV, safely.

    Parameters
    ----------
    path : str or PathLike
        The video file; made absolute and opened as a ``file:`` URL.
    timeout : float, optional
        Seconds allowed for opening and for each read.

    Returns
    -------
    av.container.InputContainer

    Raises
    ------
    VideoOpenError
        The file cannot be opened, or its format is not a whitelisted video
        container (one line, naming the file).
    """
    import av

    path = Path(os.path.abspath(os.fspath(path)))
    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_DEMUXERS)}
    started = time.monotonic()
    try:
        container = av.open("file:" + str(path), options=options, timeout=timeout)
    except av.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        if timeout is not None and time.monotonic() - started >= timeout:
            # Interrupted by the time limit: libavformat may then report the
            # half-read file as invalid data, which it is not.
            reason = f"opening took longer than {timeout:.0f} s"
        elif "Invalid argument" in reason or "Invalid data" in reason:
            reason = "not a video file ffmpeg can read (unknown or unsupported format)"
        elif "Immediate exit" in reason or "interrupt" in reason.lower():
            reason = f"opening took longer than {timeout:.0f} s"
        raise VideoOpenError(path, reason) from None
    except OSError as exc:
        raise VideoOpenError(path, f"cannot read ({exc.strerror or exc})") from None
    if container.format.name not in ALLOWED_DEMUXERS:
        # libavformat already enforces the whitelist; this is the second lock.
        container.close()
        raise VideoOpenError(path, f"format {container.format.name!r} is not a video container")
    return container


def first_video_stream(container):
    """The first video stream that is not a cover picture (ffmpeg's ``0:V:0``), or None."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None

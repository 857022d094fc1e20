"""Which keyframes of the frame table a seek can start from: checked by the decoder.

A damaged or forged index can flag a frame as a keyframe that is not one;
decoded after a seek, it and the frames after it come out wrong without an
error. The PyAV source sees the decoder's flags on every frame and refuses
such a seek itself (``PyAVStream._check_keyframe``). The ffmpeg executable
cannot show them (its log is the file's to write into), so before it seeks,
the same check runs here, in process: PyAV seeks to the keyframe and decodes
the first frame at or after it, which must decode as a keyframe. A refused
keyframe is replaced as the PyAV source's tries replace it: by the keyframe
before, and if that is refused too, by the start of the file. Both sources so
start from the same keyframes and give the same frames.
"""

from __future__ import annotations

import threading
import weakref

from napari_video_extract.core.errors import DecodeError, VideoOpenError
from napari_video_extract.core.probe import VideoInfo

__all__ = ["seek_is_trusted", "trusted_seek_start"]

#: Checked keyframes per video (the verdicts die with their VideoInfo).
_VERDICTS: weakref.WeakKeyDictionary[VideoInfo, dict[int, bool]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def seek_is_trusted(info: VideoInfo, keyframe: int, *, timeout: float | None = None) -> bool:
    """True if a seek to ``keyframe`` starts decoding at a real keyframe.

    PyAV (one slice thread, nothing skipped) seeks there and decodes up to
    the first frame at or after it, which must pass the PyAV source's own
    keyframe check. A seek that fails, a file that ends first, or a frame
    refused: False. The verdict is kept for this ``info``.

    Parameters
    ----------
    info : VideoInfo
        The probed video.
    keyframe : int
        A keyframe of ``info.keyframes``; 0 (the start of the file) is
        always trusted.
    timeout : float, optional
        Seconds allowed for opening the file and for each read.
    """
    if keyframe <= 0:
        return True
    with _LOCK:
        known = _VERDICTS.setdefault(info, {}).get(keyframe)
    if known is not None:
        return known
    from napari_video_extract.core.pyav_source import PyAVStream

    try:
        with PyAVStream(
            info, keyframe, None, first=keyframe, threads=1, skip=False, stall_timeout=timeout
        ) as stream:
            trusted = next(stream, None) is not None
    except (DecodeError, VideoOpenError):
        trusted = False
    with _LOCK:
        _VERDICTS.setdefault(info, {})[keyframe] = trusted
    return trusted


def trusted_seek_start(info: VideoInfo, start: int, *, timeout: float | None = None) -> int:
    """The keyframe a decoder asked to start at keyframe ``start`` really seeks to.

    (``start`` that is not a keyframe stands for the keyframe before it.)
    ``start`` if its seek is trusted (:func:`seek_is_trusted`), else the
    keyframe before it if that one is, else 0: the start of the file, where
    no seek is needed. The same tries, in the same order, as the PyAV
    source's (:func:`~napari_video_extract.core.pyav_source.pyav_attempts`).
    """
    start = info.keyframe_before(start)
    if start <= 0:
        return 0
    for keyframe in (start, info.keyframe_before(start - 1)):
        if seek_is_trusted(info, keyframe, timeout=timeout):
            return keyframe
    return 0

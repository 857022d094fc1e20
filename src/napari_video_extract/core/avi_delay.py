"""The decoder's delay in an AVI file: checked on every frame of a run.

AVI stores no presentation times. The frame table times frame ``i`` by the
slot of the packet whose decoding gives it out, ``i + delay``, with the one
decoder delay (reorder depth) the probe saw at the start of the stream
(:func:`~napari_video_extract.core.aviindex.avi_frame_ticks`): finding the
delay of every frame would take a full decode at open time. Where the delay
changes mid-stream (an H.264 stream joined from a part without B-frames and
a part with a B-pyramid, whose decoder holds back more frames from the
second part on), the frames after the change come out at slots the table
gives to their neighbours, with no error from the decoder.

Both frame sources see it cheaply while they decode: AVI has one packet per
frame, so the ``n``-th frame a decoder gives out after starting at a
keyframe is frame ``began + n``, and the index its timestamp maps to must
say so. A frame that does not (its decoder held back more, or fewer, frames
than the table assumed) ends the run with a :class:`DecodeError` naming the
file and the reason, before it is given: the frames of the run before it
were timed right, the rest of the run is reported missing, never replaced
by a neighbour. The count is the decoder's own (PyAV's frames, or the
ffmpeg executable's count of decoded frames on its statistics pipe), not
text the file can write into.
"""

from __future__ import annotations

from napari_video_extract.core.errors import DecodeError
from napari_video_extract.core.probe import VideoInfo

__all__ = ["DelayChangedError", "check_delay", "check_run", "delay_changes"]


class DelayChangedError(DecodeError):
    """The decoder's reorder delay changed mid-run: its frames cannot be identified."""


def _changed(info: VideoInfo, frame: int) -> DelayChangedError:
    return DelayChangedError(
        info.path,
        f"cannot be decoded exactly: the decoder's reorder delay changes mid-stream (by "
        f"frame {frame}) and AVI stores no frame times to tell frames apart",
    )


def check_delay(info: VideoInfo, index: int, codec_context, delay: int | None) -> int:
    """Check that a PyAV decoder's reorder delay is the one of the run's first frame.

    Parameters
    ----------
    info : VideoInfo
        The probed video.
    index : int
        The index the frame just given out maps to.
    codec_context : av.codec.context.CodecContext
        Its decoder: ``has_b_frames`` is libavcodec's reorder delay.
    delay : int or None
        The delay at the run's first frame (``None``: this is the first).

    Returns
    -------
    int
        The run's delay, to pass with its next frame.

    Raises
    ------
    DecodeError
        If the delay changed: this frame and the run's next ones are not
        the frames the table times them as.
    """
    now = int(codec_context.has_b_frames)
    if delay is None or now == delay:
        return now
    raise _changed(info, index)


def delay_changes(info: VideoInfo, start: int, stop: int, *, timeout: float | None) -> bool:
    """True unless PyAV decodes from keyframe ``start`` to frame ``stop`` with one delay.

    One slice thread, nothing skipped, frames not converted. Anything else
    that goes wrong (a refused seek, the file ending first) is True too:
    the caller then cannot tell a lost frame from a changed delay.
    """
    from napari_video_extract.core.pyav_source import PyAVStream

    try:
        with PyAVStream(
            info,
            start,
            None,
            first=stop,
            seek=start > 0,
            threads=1,
            skip=False,
            stall_timeout=timeout,
        ) as stream:
            return not any(frame.index >= stop for frame in stream)
    except DecodeError:
        return True


def check_run(info: VideoInfo, index: int, given_before: int, began: int | None) -> int:
    """Check that an AVI frame's index follows from how many frames the run gave before it.

    Parameters
    ----------
    info : VideoInfo
        The probed video.
    index : int
        The index the frame's timestamp maps to.
    given_before : int
        Frames the decoder gave out in this run before this one.
    began : int or None
        The index the run's first frame said decoding began at (``None``:
        this is the first).

    Returns
    -------
    int
        The index decoding began at, to pass with the run's next frame.

    Raises
    ------
    DecodeError
        If the frame's index and its place in the run disagree: the
        decoder's delay is not the one the frame table assumed.
    """
    here = index - given_before
    if began is None or here == began:
        return here
    raise _changed(info, began + given_before)

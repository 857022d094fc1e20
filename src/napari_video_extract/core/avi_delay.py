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

Both frame sources see it while they decode, at no cost for other files,
and end the run with a :class:`DelayChangedError` (naming the file and the
reason) before the first frame that would be taken for a neighbour: the
frames before it were timed right, the rest of the run is reported missing.

* The PyAV source reads the decoder's delay (FFmpeg's ``has_b_frames``,
  PyAV's ``reorder_depth``) after every AVI frame (:func:`check_delay`):
  it must stay the run's first frame's.
  A run that starts with a stale or grown delay (a seek into the second
  part) is already refused by the landing check, its first frame mapping
  past its keyframe.
* The ffmpeg executable's frames arrive filtered (only the wanted ones),
  with its decoder's count of frames (a statistics pipe: not text the file
  can write into). AVI has one packet per frame, so the ``n``-th frame
  after the run's keyframe ``k`` is frame ``k + n`` (:func:`check_run`).
  The count is off when the delay changed, and also when a damaged packet
  gave no frame (then the times are right); on a mismatch, PyAV decodes
  the run once up to that frame, watching its delay, to tell which
  (:func:`delay_changes`).
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
        Its decoder: ``reorder_depth`` is libavcodec's ``has_b_frames``,
        the decoder's reorder delay.
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
    # PyAV's ``has_b_frames`` is a bool (it sees 0 -> 2, not 1 -> 2);
    # ``reorder_depth``, where PyAV has it (18 does), is FFmpeg's int.
    now = int(getattr(codec_context, "reorder_depth", codec_context.has_b_frames))
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

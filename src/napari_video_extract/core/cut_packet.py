"""Whether the packet a cut file ends with gives a frame: asked of the decoder.

A file cut short (a copy or download that stopped) ends with a packet the
demuxer can only read in part (FFmpeg flags it ``AV_PKT_FLAG_CORRUPT``).
Some decoders still make a frame of it (the missing part concealed from
the frames before), others refuse it. The frame table must list exactly
the frames a full decode gives, and no header or flag tells which case it
is: the decoder does. It decodes the last group of pictures twice, once
with and once without the cut packet, and the packet is a frame if the
first run gives more frames. Where that cannot be told from the last group
of pictures (the seek landed late), the packet is taken to give none: the
table then misses at most the cut frame, never lists one a decode does not
give, and the probe never decodes the whole file for one packet.
"""

from __future__ import annotations

import os

from napari_video_extract.core.container import first_video_stream, open_container
from napari_video_extract.core.errors import VideoOpenError

__all__ = ["cut_packet_gives_a_frame"]


def cut_packet_gives_a_frame(
    path: str | os.PathLike, *, seek: float | None, packets_after: int, timeout: float
) -> bool:
    """True if a decode that ends with the file's last packet gives a frame more for it.

    Parameters
    ----------
    path : str or PathLike
        The video file (the probe has checked it is a regular file).
    seek : float or None
        Presentation time (seconds) of a keyframe packet before the last
        packet, where both decodes start; None: from the start of the file.
    packets_after : int
        How many packets, the last one included, the listing has from that
        keyframe on: where a seek lands later, the answer is False.
    timeout : float
        Seconds allowed for opening the file and for each read.

    Raises
    ------
    VideoOpenError
        PyAV cannot open the file.
    """
    with_it = _frames_decoded(path, seek, packets_after, timeout, last=True)
    if with_it is None:  # the seek landed late: undecided, so no frame
        return False
    without = _frames_decoded(path, seek, packets_after, timeout, last=False)
    return without is not None and with_it > without


def _frames_decoded(
    path: str | os.PathLike, seek: float | None, packets_after: int, timeout: float, *, last: bool
) -> int | None:
    """Frames one decode from ``seek`` gives, with or without the last packet.

    One slice thread: a frame-threaded decoder can lose the frames it holds
    when a packet fails, which the executable's full decode does not.
    None if the seek landed after the first of ``packets_after`` packets.
    """
    import av

    with open_container(path, timeout=timeout) as container:
        stream = first_video_stream(container)
        if stream is None:
            raise VideoOpenError(path, "no video stream")
        stream.thread_type = "SLICE"
        stream.thread_count = 1
        codec = stream.codec_context
        if seek is not None:
            target = round(seek / stream.time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = 0
        seen = 0
        held = None  # the last packet read, fed once the next one shows it is not the last
        for packet in container.demux(stream):
            if not packet.size:
                continue
            seen += 1
            if held is not None:
                frames += _decode(codec, held, av.FFmpegError)
            held = packet
        if seek is not None and seen < packets_after:
            return None
        if held is not None and last:
            frames += _decode(codec, held, av.FFmpegError)
        frames += _decode(codec, None, av.FFmpegError)
        return frames


def _decode(codec, packet, error: type[Exception]) -> int:
    try:
        return len(codec.decode(packet))
    except error:
        return 0  # a packet the decoder refuses gives no frame

"""How many of a video's frames are references: the planner's cost of passing a frame.

A decoder that skips non-reference frames (:mod:`.pyav_source`) decodes,
on the way to a wanted frame, only the frames other frames are predicted
from. The planner needs that fraction before decoding anything. It is
measured, not guessed: the first packets of the video (up to
:data:`SAMPLE_PACKETS`, nothing decoded) are read through
:func:`~napari_video_extract.core.container.open_container` and each
packet's picture header says whether it is a reference:

* H.264: ``nal_ref_idc`` (bits 5-6 of the first byte of each slice NAL
  unit; packets are length-prefixed (AVCC, MP4/MKV) or start-code delimited
  (Annex B, MPEG-TS));
* MPEG-1/2 video: ``picture_coding_type`` of the picture header (B is not a
  reference);
* MPEG-4 part 2: ``vop_coding_type`` of the VOP header (B is not a reference).

A packet that cannot be read is counted as a reference (decoded), so the
estimate errs towards the real cost. Encoders keep one GOP structure through
a file, so the start stands for the whole; the result is kept per file
(path, size, modification time) for the process's lifetime. The fraction is
only a cost: a wrong estimate changes the plan, never a pixel.
"""

from __future__ import annotations

import os
import threading

from napari_video_extract.core.container import first_video_stream, open_container
from napari_video_extract.core.errors import VideoOpenError
from napari_video_extract.core.probe import VideoInfo
from napari_video_extract.core.pyav_source import NONREF_EXACT_CODECS, interlaced_by_header

__all__ = ["SAMPLE_PACKETS", "is_reference_packet", "reference_fraction"]

#: Packets read to measure the fraction (a few GOPs of a usual encode).
SAMPLE_PACKETS = 600
#: Seconds allowed for opening the file and each read while sampling.
_TIMEOUT = 10.0

_cache: dict[tuple[str, int, int], float] = {}
_cache_lock = threading.Lock()


def _annexb_nal_starts(data: bytes) -> list[int]:
    """Offsets of the first byte after each ``00 00 01`` start code."""
    starts = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos + 3)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return starts


def _h264_nal_headers(data: bytes, length_size: int) -> list[int]:
    """The first byte of every NAL unit of an H.264 packet."""
    if length_size == 0:
        return [data[i] for i in _annexb_nal_starts(data) if i < len(data)]
    heads = []
    pos = 0
    while pos + length_size < len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size <= 0:
            break
        heads.append(data[pos])
        pos += size
    return heads


def is_reference_packet(codec: str, data: bytes, *, length_size: int = 0) -> bool:
    """True unless the packet's picture is known to be a non-reference one.

    Parameters
    ----------
    codec : str
        FFmpeg's decoder name (``h264``, ``mpeg2video``...).
    data : bytes
        The packet's payload.
    length_size : int, optional
        H.264 only: bytes of each NAL length prefix (AVCC, from the
        ``avcC`` extradata); 0 for start codes (Annex B).

    Returns
    -------
    bool
    """
    if codec == "h264":
        slices = [h for h in _h264_nal_headers(data, length_size) if h & 0x1F in (1, 5)]
        return not slices or any(h & 0x60 for h in slices)
    if codec in ("mpeg1video", "mpeg2video"):
        for i in _annexb_nal_starts(data):
            if i + 2 < len(data) and data[i] == 0x00:  # picture_start_code
                return (data[i + 2] >> 3) & 0x7 != 3  # picture_coding_type B
        return True
    if codec == "mpeg4":
        for i in _annexb_nal_starts(data):
            if i + 1 < len(data) and data[i] == 0xB6:  # vop_start_code
                return (data[i + 1] >> 6) & 0x3 != 2  # vop_coding_type B
        return True
    return True


def _avcc_length_size(extradata: bytes | None) -> int:
    """NAL length prefix size from an ``avcC`` record; 0 for Annex B streams."""
    if extradata and len(extradata) >= 5 and extradata[0] == 1:
        return (extradata[4] & 0x3) + 1
    return 0


def _measure(info: VideoInfo) -> float:
    refs = total = 0
    try:
        container = open_container(info.path, timeout=_TIMEOUT)
    except VideoOpenError:
        return 1.0
    try:
        stream = first_video_stream(container)
        if stream is None or interlaced_by_header(stream.codec_context):
            return 1.0  # interlaced video skips nothing (see pyav_source)
        length_size = _avcc_length_size(stream.codec_context.extradata)
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            total += 1
            refs += is_reference_packet(info.codec, bytes(packet), length_size=length_size)
            if total >= SAMPLE_PACKETS:
                break
    except Exception:  # a damaged file: assume every frame is decoded
        return 1.0
    finally:
        container.close()
    return refs / total if total else 1.0


def reference_fraction(info: VideoInfo) -> float:
    """Fraction of the video's frames a reference-only decoder must decode.

    Parameters
    ----------
    info : VideoInfo
        The probed video.

    Returns
    -------
    float
        In ``(0, 1]``; 1.0 for codecs whose decoder cannot skip
        (:data:`~napari_video_extract.core.pyav_source.NONREF_EXACT_CODECS`),
        AVI files (no per-packet presentation time), video whose header says
        interlaced (nothing is skipped) and unreadable files.
    """
    if info.codec not in NONREF_EXACT_CODECS or "avi" in info.container.split(","):
        return 1.0
    try:
        st = os.stat(info.path)
    except OSError:
        return 1.0
    key = (str(info.path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    fraction = max(_measure(info), 1.0 / SAMPLE_PACKETS)
    with _cache_lock:
        _cache[key] = fraction
    return fraction

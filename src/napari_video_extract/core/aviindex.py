"""Read the frame table of an AVI file from its ``idx1`` index, without the media data.

An AVI file lists every chunk of its ``movi`` list in a trailing ``idx1``
index: the chunk id (stream number and type), a keyframe flag, offset and
size. A video stream's chunks are one tick (``dwScale / dwRate`` seconds)
each, counted from the stream header's ``dwStart``, so the table of frames is
that index read as arrays: milliseconds for a two-hour film, where listing
every packet with ffmpeg reads the whole file. Empty chunks ("drop frames")
take a tick and are not frames.

Those ticks are the packets' slots in decoding order, not the frames'
presentation times, which AVI does not store: :func:`avi_frame_ticks` turns
them into the times the decoders give the frames.

Defensive, like :mod:`.mp4index`: anything unexpected (an OpenDML file with
a second ``RIFF AVIX`` part, whose chunks ``idx1`` does not list; streams of
other kinds than audio and video; palette changes; inconsistent sizes; an
index whose chunks overlap, lie outside ``movi`` or do not match the chunk
headers in the file; more top-level chunks than real files have)
returns ``None`` and the caller lists the packets instead, which is always
right. Tests compare both on every AVI at hand.
"""

from __future__ import annotations

import os
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np

from napari_video_extract.core.frame_index import FrameTable

__all__ = ["avi_frame_ticks", "duration_estimate", "read_avi_frame_table"]

#: Largest idx1 we read (16 bytes an entry: 16 M chunks).
MAX_INDEX_BYTES = 256 * 1024 * 1024
#: Largest header list we read.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Most top-level chunks we walk: real files have a handful (hdrl, a JUNK
#: or INFO list or two, movi, idx1).
MAX_TOP_LEVEL_CHUNKS = 256
#: Index entries whose chunk header is read back to check the index.
_SPOT_CHECKS = 16
_AVIIF_KEYFRAME = 0x10


class _Unusual(Exception):
    pass


def _chunks(fh, start: int, end: int):
    """Yield (id, payload_start, size, first 4 payload bytes) of the chunks in [start, end)."""
    pos = start
    count = 0
    while pos + 8 <= end:
        count += 1
        if count > MAX_TOP_LEVEL_CHUNKS:
            raise _Unusual("too many top-level chunks")
        fh.seek(pos)
        head = fh.read(12)
        if len(head) < 8:
            return
        kind, size = struct.unpack_from("<4sI", head)
        yield kind, pos + 8, size, head[8:12]
        pos += 8 + size + (size & 1)


def _stream_headers(hdrl: bytes) -> list[tuple[bytes, int, int, int]]:
    """(fccType, dwScale, dwRate, dwStart) of each ``strl`` list, in order."""
    streams = []
    pos = 0
    while pos + 8 <= len(hdrl):
        kind, size = struct.unpack_from("<4sI", hdrl, pos)
        if kind == b"LIST" and hdrl[pos + 8 : pos + 12] == b"strl":
            sub = pos + 12
            end = min(pos + 8 + size, len(hdrl))
            found = None
            while sub + 8 <= end:
                skind, ssize = struct.unpack_from("<4sI", hdrl, sub)
                if skind == b"strh" and ssize >= 48 and sub + 8 + 48 <= end:
                    fcc = hdrl[sub + 8 : sub + 12]
                    scale, rate, start = struct.unpack_from("<III", hdrl, sub + 8 + 20)
                    found = (bytes(fcc), scale, rate, start)
                    break
                sub += 8 + ssize + (ssize & 1)
            if found is None:
                return []
            streams.append(found)
        pos += 8 + size + (size & 1)
    return streams


def _headers_match(fh, at: np.ndarray, ids: np.ndarray, sizes: np.ndarray) -> bool:
    """Whether a few chunks the index lists have that id and size in the file."""
    for i in np.unique(np.linspace(0, len(at) - 1, _SPOT_CHECKS).astype(np.int64)):
        head = os.pread(fh.fileno(), 8, int(at[i]))
        if len(head) < 8 or head != ids[i].ljust(4, b"\0")[:4] + struct.pack("<I", sizes[i]):
            return False
    return True


def read_avi_frame_table(path: str | os.PathLike, *, stream: int) -> FrameTable | None:
    """The frame table of video stream ``stream`` from the ``idx1`` index, or None.

    Parameters
    ----------
    path : str or PathLike
        The AVI file.
    stream : int
        Index of the video stream (ffmpeg's stream index: the ``strl`` order).

    Returns
    -------
    FrameTable or None
        Ticks (decoding order, which AVI also displays in), keyframe flags
        and durations (one tick each) of the non-empty chunks; None if the
        file has no usable ``idx1`` or anything looks unusual.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _read(fh, os.fstat(fh.fileno()).st_size, stream)
    except (_Unusual, OSError, struct.error, ValueError, OverflowError):
        return None


def _read(fh, file_size: int, stream: int) -> FrameTable | None:
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None
    (riff_size,) = struct.unpack_from("<I", head, 4)
    riff_end = 8 + riff_size
    if riff_end > file_size:
        return None  # truncated: ffmpeg knows what is readable
    if riff_end + 8 <= file_size:
        return None  # more RIFF parts (OpenDML): idx1 lists only the first
    hdrl = idx1 = None
    movi_start = movi_end = None
    for kind, start, size, sub in _chunks(fh, 12, riff_end):
        if kind == b"LIST" and sub == b"hdrl":
            if not 4 <= size <= MAX_HEADER_BYTES:
                return None
            fh.seek(start + 4)
            hdrl = fh.read(size - 4)
        elif kind == b"LIST" and sub == b"movi":
            if movi_start is not None:
                return None
            movi_start = start  # idx1 offsets count from the "movi" fourcc
            movi_end = start + size
        elif kind == b"idx1":
            if size > MAX_INDEX_BYTES or size % 16 or start + size > file_size:
                return None
            fh.seek(start)
            idx1 = fh.read(size)
    if hdrl is None or idx1 is None or movi_start is None:
        return None
    streams = _stream_headers(hdrl)
    if not 0 <= stream < len(streams) or any(s[0] not in (b"vids", b"auds") for s in streams):
        return None
    fcc, scale, rate, start_tick = streams[stream]
    if fcc != b"vids" or scale <= 0 or rate <= 0:
        return None
    if start_tick > 3600 * rate // scale:
        start_tick = 0  # ffmpeg's avidec: "crazy start time", read as 0
    entries = np.frombuffer(
        idx1, dtype=np.dtype([("id", "S4"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])
    )
    ids = entries["id"]
    prefix = f"{stream:02d}".encode()
    mine = np.char.startswith(ids, prefix) if stream < 100 else np.zeros(len(ids), bool)
    kinds = np.char.ljust(ids[mine], 4)
    if not np.isin(kinds, [prefix + b"dc", prefix + b"db"]).all():
        return None  # palette changes or unknown chunk types: let ffmpeg read them
    sizes = entries["size"][mine].astype(np.int64)
    flags = entries["flags"][mine]
    offsets = entries["offset"][mine].astype(np.int64)
    if len(sizes) == 0 or (np.diff(offsets) <= 0).any():
        return None  # not in file order: ffmpeg then orders by time itself
    # Offsets count from the movi list's fourcc (or, in some writers, from the
    # file's start): the index's first entry is the list's first chunk.
    first = int(entries["offset"][0])
    if first not in (4, movi_start + 4):
        return None
    at = offsets + (movi_start if first == 4 else 0)
    if at[0] < movi_start + 4 or (at + 8 + sizes > min(movi_end, file_size)).any():
        return None  # a chunk outside the movi list
    if (at[1:] < at[:-1] + 8 + sizes[:-1]).any():
        return None  # chunks that overlap
    if not _headers_match(fh, at, ids[mine], sizes):
        return None
    ticks = start_tick + np.arange(len(sizes), dtype=np.int64)
    real = sizes > 0
    return FrameTable(
        ticks=ticks[real],
        keyframe=(flags[real] & _AVIIF_KEYFRAME) > 0,
        durations=np.ones(int(real.sum()), dtype=np.int64),
        time_base=Fraction(scale, rate),
    )


def duration_estimate(duration: int, gap: int) -> int:
    """The ffmpeg executable's estimate of a frame's duration (its next frame's step).

    ``video_duration_estimate`` in ``fftools/ffmpeg_dec.c``, for a container
    with timestamps: the frame's duration, unless it is the one tick lavf
    makes up and the gap from the previous frame (``gap``, > 0) is more
    than two; then that gap. The frame table (:func:`avi_frame_ticks`) and
    the PyAV source time the frames flushed after the last packet by it.
    """
    if duration > 0 and not (duration == 1 and gap > 2):
        return duration
    return gap


def avi_frame_ticks(slots: np.ndarray, first_tick: int) -> np.ndarray | None:
    """The tick each frame of an AVI video stream is decoded at, from its packets' slots.

    AVI gives each packet a slot (one tick, in decoding order) and no
    presentation time. Decoding it, the ffmpeg executable and libavcodec stamp
    each frame with the slot of the packet whose decoding gave it out (the
    packet's dts, the frame's best-effort timestamp), so a decoder that holds
    back ``delay`` frames to reorder them (H.264 or MPEG-4 part 2 with
    B-frames) stamps frame ``i`` with slot ``i + delay``, and the last
    ``delay`` frames, given out at the end of the stream without a packet,
    one tick apart after the last slot (or as far apart as the last two
    slots, when those are more than two ticks apart). Where the slots are evenly spaced
    that is the slots shifted by a constant; where they are not (empty
    "drop" chunks, or the first packet written at slot 0 and the next ones
    at the time they were due, as ffmpeg's muxer does with a start offset)
    it is not.

    Parameters
    ----------
    slots : numpy.ndarray
        Slots (ticks, increasing) of the stream's non-empty packets in file
        order, as :func:`read_avi_frame_table` or a packet listing gives them.
    first_tick : int
        The tick the ffmpeg executable decodes frame 0 at: the slot of the
        packet that gives frame 0 out, whose position in ``slots`` is the
        decoder's delay.

    Returns
    -------
    numpy.ndarray or None
        The frames' ticks in display order (as many as ``slots``); None if no
        packet has slot ``first_tick`` (the executable's frame 0 is not one
        of these packets' frames) or the slots do not increase.
    """
    if len(slots) > 1 and not (np.diff(slots) > 0).all():
        return None  # not a packet clock (a listing of a damaged file)
    delay = int(np.searchsorted(slots, first_tick))
    if delay >= len(slots) or int(slots[delay]) != first_tick:
        return None
    if delay == 0:
        return slots
    # The executable times a frame without a timestamp by the previous one
    # plus that one's duration estimate (a packet's duration is one tick).
    gap = int(slots[-1] - slots[-2]) if len(slots) - delay >= 2 else 1
    step = duration_estimate(1, gap)
    flushed = int(slots[-1]) + step * np.arange(1, delay + 1, dtype=np.int64)
    return np.concatenate([slots[delay:], flushed])

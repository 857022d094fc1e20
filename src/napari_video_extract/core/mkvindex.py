"""Read the frame table of a Matroska/WebM file from its block headers.

Matroska has no complete frame index (its ``Cues`` list only some
keyframes), but every frame is one ``SimpleBlock`` (or ``BlockGroup``) whose
first bytes give the track, the time relative to its cluster and the
keyframe flag. Each cluster is read in one ``pread``; a Python walk over
its element headers jumps over the payloads and keeps three header bytes
and the size of each block of the track, and numpy decodes the times, flags
and sizes of all of them at once at the end: about 0.3 s of CPU for a
two-hour 720p film (180,000 frames; it was 0.6 s with the fields decoded per
block), where listing the packets with ffmpeg reads and checksums every byte.

Timestamps are presentation times (Matroska stores them so), in
``TimestampScale`` units: ffmpeg's time base for the stream. Defensive like
:mod:`.mp4index`: anything unexpected (unknown-size clusters, laced or
encrypted blocks, compressed or per-track-scaled tracks, track kinds ffmpeg
would skip, a CodecID ffmpeg times otherwise or that is not the probed
codec's, sizes past the end of the file, times of 2**62 or more, empty
clusters, more clusters than the file's size allows, a block of the track
too short for its header, a parse over ``PARSE_BUDGET_S``) returns ``None``
and the caller lists the packets instead. Tests compare both on every Matroska file at hand.
"""

from __future__ import annotations

import mmap
import os
import time
from array import array
from fractions import Fraction
from pathlib import Path

import numpy as np

from napari_video_extract.core.frame_index import FrameTable

__all__ = ["read_mkv_frame_table"]

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_CLUSTER = 0x1F43B675
_TIMESTAMP = 0xE7
_SIMPLE_BLOCK = 0xA3
_BLOCK_GROUP = 0xA0
_BLOCK = 0xA1
_BLOCK_DURATION = 0x9B
_REFERENCE_BLOCK = 0xFB
_ENCRYPTED_BLOCK = 0xAF
_INFO = 0x1549A966
_TIMESTAMP_SCALE = 0x2AD7B1
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_NUMBER = 0xD7
_TRACK_TYPE = 0x83
_CODEC_ID = 0x86
_DEFAULT_DURATION = 0x23E383
_TRACK_TIMESTAMP_SCALE = 0x23314F
_CONTENT_ENCODINGS = 0x6D80
_CODEC_DELAY = 0x56AA
#: Track types ffmpeg makes a stream of (video, audio, subtitle), in order.
_STREAM_TRACK_TYPES = {1, 2, 0x11}
#: Most frames we read: about 23 hours at 60 fps (11 bytes each in memory,
#: 17 more for a BlockGroup's).
_MAX_FRAMES = 5_000_000
#: Timestamps, durations and ticks at or past this are unusual: far from any
#: real film and clear of int64 overflow when added up.
_TIME_LIMIT = 1 << 62
#: Seconds the whole parse may take (a two-hour film takes under one): past
#: it the caller lists the packets, whose run has its own timeout.
PARSE_BUDGET_S = 10.0
#: Blocks or elements between two checks of the budget and the frame cap.
_CHECK_EVERY = 1 << 14
#: Largest Info or Tracks element we read.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Largest cluster we map at once (ffmpeg writes clusters of 5 s or 5 MB).
MAX_CLUSTER_BYTES = 256 * 1024 * 1024
#: Clusters up to this size are read with one ``pread``, larger ones mapped.
_PREAD_CLUSTER_BYTES = 1024 * 1024
#: Top-level elements allowed: a few headers plus one cluster per 4 KiB of
#: file (real clusters hold seconds of video: tens of kilobytes and more).
_MIN_TOP_LEVEL = 256
_BYTES_PER_TOP_LEVEL = 4096
#: ``CodecID`` of each codec the reader knows ffmpeg maps plainly (block time
#: is the frame's presentation time). ``V_MS/VFW/FOURCC`` is absent on
#: purpose: ffmpeg puts its block times into dts, not pts.
_CODEC_IDS = {
    b"V_MPEG4/ISO/AVC": "h264",
    b"V_MPEGH/ISO/HEVC": "hevc",
    b"V_VP8": "vp8",
    b"V_VP9": "vp9",
    b"V_AV1": "av1",
    b"V_MPEG4/ISO/ASP": "mpeg4",
    b"V_MPEG4/ISO/SP": "mpeg4",
    b"V_MPEG4/ISO/AP": "mpeg4",
    b"V_MPEG1": "mpeg1video",
    b"V_MPEG2": "mpeg2video",
    b"V_MJPEG": "mjpeg",
    b"V_THEORA": "theora",
    b"V_PRORES": "prores",
    b"V_FFV1": "ffv1",
}
#: First letter of the CodecID that ffmpeg's matroskadec requires for each
#: track type; a track that fails it is skipped ("Inconsistent track type"),
#: which would shift the stream indices after it.
_CODEC_LETTERS = {1: b"V", 2: b"A", 0x11: b"SD"}


class _Unusual(Exception):
    pass


def _id(b, pos: int) -> tuple[int, int]:
    first = b[pos]
    n = 1 if first & 0x80 else 2 if first & 0x40 else 3 if first & 0x20 else 4
    if not first & 0xF0:
        raise _Unusual("bad element id")
    return int.from_bytes(b[pos : pos + n], "big"), pos + n


def _size(b, pos: int) -> tuple[int | None, int]:
    """A variable-length size; None if "unknown" (all value bits set)."""
    first = b[pos]
    if first & 0x80:
        value, n = first & 0x7F, 1
    elif first & 0x40:
        value, n = ((first & 0x3F) << 8) | b[pos + 1], 2
    else:
        n = 1
        while n <= 8 and not first & (0x80 >> (n - 1)):
            n += 1
        if n > 8:
            raise _Unusual("bad size")
        value = int.from_bytes(b[pos : pos + n], "big") & ((1 << (7 * n)) - 1)
    if value == (1 << (7 * n)) - 1:
        return None, pos + n
    return value, pos + n


def _uint(b, pos: int, size: int) -> int:
    if size > 8:
        raise _Unusual("integer too long")
    return int.from_bytes(b[pos : pos + size], "big")


def _limited(value: int) -> int:
    """``value`` if it is a sane time or duration (in ``[0, 2**62)``)."""
    if not 0 <= value < _TIME_LIMIT:
        raise _Unusual("time out of range")
    return value


def _children(b, start: int, end: int):
    pos = start
    while pos < end:
        eid, pos = _id(b, pos)
        size, pos = _size(b, pos)
        if size is None or pos + size > end:
            raise _Unusual("element size")
        yield eid, pos, size
        pos += size


def _tracks(b, start: int, end: int) -> list[dict]:
    tracks = []
    for eid, pos, size in _children(b, start, end):
        if eid != _TRACK_ENTRY:
            continue
        track = {
            "number": None,
            "type": None,
            "codec": b"",
            "default_duration": 0,
            "unusual": False,
        }
        for cid, cpos, csize in _children(b, pos, pos + size):
            if cid == _TRACK_NUMBER:
                track["number"] = _uint(b, cpos, csize)
            elif cid == _TRACK_TYPE:
                track["type"] = _uint(b, cpos, csize)
            elif cid == _CODEC_ID:
                track["codec"] = bytes(b[cpos : cpos + csize]).rstrip(b"\0")
            elif cid == _DEFAULT_DURATION:
                track["default_duration"] = _limited(_uint(b, cpos, csize))
            elif cid in (_TRACK_TIMESTAMP_SCALE, _CONTENT_ENCODINGS, _CODEC_DELAY):
                track["unusual"] = True  # its own timing or encoding: ffmpeg's business
        tracks.append(track)
    return tracks


def read_mkv_frame_table(
    path: str | os.PathLike, *, stream: int, codec: str | None = None
) -> FrameTable | None:
    """The frame table of stream ``stream`` from the block headers, or None.

    Parameters
    ----------
    path : str or PathLike
        The Matroska or WebM file.
    stream : int
        ffmpeg's index of the video stream (the ``TrackEntry`` order).
    codec : str, optional
        ffmpeg's name of that stream's codec (``"h264"``): the track's
        ``CodecID`` must be that codec's, else the track is not the stream
        the probe looked at and None is returned.

    Returns
    -------
    FrameTable or None
        Presentation ticks (``TimestampScale`` units), keyframe flags and
        durations of the non-empty blocks of that track, in file order; None
        if anything looks unusual.
    """
    try:
        with open(Path(path), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 16:
                return None
            return _read(fh.fileno(), size, stream, codec)
    except (_Unusual, OSError, IndexError, ValueError, OverflowError):
        return None


def _header(fileno: int, pos: int) -> tuple[int, int | None, int]:
    """(id, size, payload position) of the element at ``pos``, read from the file."""
    head = os.pread(fileno, 12, pos)
    eid, at = _id(head, 0)
    size, at = _size(head, at)
    return eid, size, pos + at


def _payload(fileno: int, pos: int, size: int) -> bytes:
    if size > MAX_HEADER_BYTES:
        raise _Unusual("header element too large")
    data = os.pread(fileno, size, pos)
    if len(data) != size:
        raise _Unusual("truncated header element")
    return data


def _read(fileno: int, end_of_file: int, stream: int, codec: str | None) -> FrameTable | None:
    # Top-level elements by small reads (a map of the whole file would count
    # every page the kernel maps around each header as resident memory).
    deadline = time.monotonic() + PARSE_BUDGET_S
    eid, size, pos = _header(fileno, 0)
    if eid != _EBML:
        raise _Unusual("not EBML")
    if size is None:
        raise _Unusual("EBML header size")
    eid, size, pos = _header(fileno, pos + size)
    if eid != _SEGMENT:
        raise _Unusual("no segment")
    segment_end = end_of_file if size is None else min(pos + size, end_of_file)
    scale = 1_000_000
    tracks = None
    number = default = None
    out = None
    budget = _MIN_TOP_LEVEL + end_of_file // _BYTES_PER_TOP_LEVEL
    while pos < segment_end:
        budget -= 1
        if budget < 0 or time.monotonic() > deadline:
            raise _Unusual("too many top-level elements or too slow")
        eid, size, pos = _header(fileno, pos)
        if size is None or pos + size > end_of_file:
            raise _Unusual("unknown or oversized element")
        if eid == _INFO:
            if number is not None:
                raise _Unusual("segment info after a cluster")
            info = _payload(fileno, pos, size)
            for cid, cpos, csize in _children(info, 0, size):
                if cid == _TIMESTAMP_SCALE:
                    scale = _uint(info, cpos, csize)
        elif eid == _TRACKS:
            if tracks is not None:
                raise _Unusual("two track lists")
            tracks = _tracks(_payload(fileno, pos, size), 0, size)
        elif eid == _CLUSTER:
            if number is None:
                # Clusters are read as they are found (no list of them):
                # the headers they depend on must come first, as muxers write.
                if tracks is None or scale <= 0:
                    raise _Unusual("a cluster before the tracks")
                number = _video_track(tracks, stream, codec)
                if number is None:
                    return None
                default = _limited(tracks[stream]["default_duration"] // scale)
                out = _Found(number, default)
            _cluster(fileno, pos, pos + size, out, deadline)
        pos += size
    if number is None:
        return None  # no clusters, or no video track this reader can time
    if not out:
        return None
    ticks, keys, durations, sizes = out.table()
    if time.monotonic() > deadline:
        raise _Unusual("too slow")  # the budget covers the whole parse
    if len(ticks) == 0:
        return None
    if ticks.max() >= _TIME_LIMIT:
        raise _Unusual("time out of range")
    real = sizes > 0
    return FrameTable(
        ticks=ticks[real].astype(np.int64),
        keyframe=keys[real].astype(bool),
        durations=durations[real].astype(np.int64),
        time_base=Fraction(scale, 1_000_000_000),
    )


def _video_track(tracks: list[dict], stream: int, codec: str | None) -> int | None:
    """The track number of ffmpeg's stream ``stream`` if it is a plain video track.

    Raises ``_Unusual`` if ffmpeg would skip a track (so that its stream
    indices are not the ``TrackEntry`` order); None if that stream is not a
    video track this reader can time.
    """
    for t in tracks:
        letters = _CODEC_LETTERS.get(t["type"])
        if letters is None or not t["codec"] or t["codec"][:1] not in letters:
            raise _Unusual("a track ffmpeg would skip")
        if not t["codec"].isascii() or t["number"] is None or t["number"] <= 0:
            raise _Unusual("a track ffmpeg may handle differently")
    if len({t["number"] for t in tracks}) != len(tracks):
        raise _Unusual("two tracks with one number")
    if not 0 <= stream < len(tracks):
        return None
    track = tracks[stream]
    if track["type"] != 1 or track["unusual"]:
        return None
    known = _CODEC_IDS.get(track["codec"])
    if known is None or (codec is not None and known != codec):
        return None  # V_MS/VFW/FOURCC, V_QUICKTIME, ... or not the probed stream
    return track["number"]


class _Found:
    """What the walk keeps of track ``number``'s blocks, in file order.

    Per block three header bytes (time, two bytes, and flags) and the
    payload size; the cluster times and BlockGroup fields where they apply.
    numpy turns them into the frame table once, at the end (:meth:`table`).
    """

    def __init__(self, number: int, default: int) -> None:
        self.number, self.default = number, default
        self.heads = bytearray()
        self.sizes = array("q")
        self.times: list[tuple[int, int]] = []  # (first block, cluster time)
        # BlockGroups' fields in three columns (17 bytes a group, where a
        # dict of tuples took ~170: a file of BlockGroups only may hold
        # _MAX_FRAMES of them), written into the table by numpy at once.
        self.group_blocks = array("q")
        self.group_durations = array("q")
        self.group_keys = array("b")

    def __len__(self) -> int:
        return len(self.sizes)

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ticks, keys, durations, sizes)`` of the blocks found."""
        head = np.frombuffer(self.heads, dtype=np.uint8).reshape(-1, 3)
        flags = head[:, 2]
        if (flags & 0x06).any():
            raise _Unusual("laced block")
        relative = (head[:, 0].astype(np.int64) << 8) | head[:, 1]
        relative -= (relative >= 0x8000) * 0x10000  # signed 16 bits
        first = np.array([block for block, _ in self.times], dtype=np.int64)
        cluster = np.array([value for _, value in self.times], dtype=np.int64)
        ticks = cluster[np.searchsorted(first, np.arange(len(self)), side="right") - 1] + relative
        if (ticks < 0).any():
            raise _Unusual("negative time")
        keys = (flags & 0x80) != 0
        durations = np.full(len(self), self.default, dtype=np.int64)
        if self.group_blocks:
            groups = np.frombuffer(self.group_blocks, dtype=np.int64)
            durations[groups] = np.frombuffer(self.group_durations, dtype=np.int64)
            keys[groups] = np.frombuffer(self.group_keys, dtype=np.int8) != 0
        return ticks, keys, durations, np.frombuffer(self.sizes, dtype=np.int64)


def _cluster(fileno: int, start: int, end: int, out: _Found, deadline: float) -> None:
    """Add the blocks of track ``out.number`` in the cluster at [start, end) to ``out``.

    A small cluster is read at once, a large one mapped and unmapped after
    it is read: the process's resident memory stays about one cluster.
    """
    if end - start > MAX_CLUSTER_BYTES:
        raise _Unusual("cluster too large")
    if end - start <= _PREAD_CLUSTER_BYTES:
        data = os.pread(fileno, end - start, start)
        if len(data) != end - start:
            raise _Unusual("truncated cluster")
        _cluster_blocks(data, 0, end - start, out, deadline)
        return
    base = start - start % mmap.ALLOCATIONGRANULARITY
    with mmap.mmap(fileno, end - base, access=mmap.ACCESS_READ, offset=base) as b:
        _cluster_blocks(b, start - base, end - base, out, deadline)


def _cluster_blocks(b, start: int, end: int, out: _Found, deadline: float) -> None:
    """Walk one cluster's element headers; keep the header bytes of ``out.number``'s blocks.

    The walk is the sequential part (each size leads to the next header) and
    does as little per block as it can: the times, flags and sizes are
    decoded by numpy for all blocks at once (:meth:`_Found.table`).
    """
    number, default = out.number, out.default
    mine = 0x80 | number if number < 0x80 else -1  # its one-byte track number
    heads, sizes = out.heads, out.sizes
    add_size = sizes.append
    simple_block, check_every = _SIMPLE_BLOCK, _CHECK_EVERY
    cluster_time = None
    pos = start
    blocks = 0
    steps = 0
    while pos < end:
        steps += 1
        if steps == check_every:
            steps = 0
            if len(sizes) > _MAX_FRAMES or time.monotonic() > deadline:
                raise _Unusual("too many frames or too slow")
        if b[pos] == simple_block and cluster_time is not None:
            # The common case, inlined: a SimpleBlock with a 1-4 byte size
            # and a one-byte track number.
            first = b[pos + 1]
            if first & 0x80:
                size, block = first & 0x7F, pos + 2
                known = size != 0x7F
            elif first & 0x40:
                size, block = ((first & 0x3F) << 8) | b[pos + 2], pos + 3
                known = size != 0x3FFF
            elif first & 0x20:
                size = ((first & 0x1F) << 16) | (b[pos + 2] << 8) | b[pos + 3]
                block, known = pos + 4, size != 0x1FFFFF
            elif first & 0x10:
                size = int.from_bytes(b[pos + 1 : pos + 5], "big") & 0x0FFFFFFF
                block, known = pos + 5, size != 0x0FFFFFFF
            else:
                known = False
            if known and block + size <= end and b[block] & 0x80:
                blocks += 1
                if b[block] == mine:
                    if size < 4:
                        raise _Unusual("block too short")
                    heads += b[block + 1 : block + 4]
                    add_size(size - 4)
                pos = block + size
                continue
        eid, pos = _id(b, pos)
        size, pos = _size(b, pos)
        if size is None or pos + size > end:
            raise _Unusual("block size")
        if eid == _TIMESTAMP:
            cluster_time = _limited(_uint(b, pos, size))
            out.times.append((len(sizes), cluster_time))
        elif eid in (_SIMPLE_BLOCK, _BLOCK_GROUP):
            if cluster_time is None:
                raise _Unusual("block before the cluster time")
            blocks += 1
            group = None
            if eid == _SIMPLE_BLOCK:
                block, block_size = pos, size
            else:
                block = None
                duration, key = default, True
                for cid, cpos, csize in _children(b, pos, pos + size):
                    if cid == _BLOCK:
                        block, block_size = cpos, csize
                    elif cid == _BLOCK_DURATION:
                        duration = _limited(_uint(b, cpos, csize))
                    elif cid == _REFERENCE_BLOCK:
                        key = False
                if block is None:
                    raise _Unusual("block group without a block")
                group = (duration, key)
            track, head = _size(b, block)
            if track == number:
                if head + 3 > block + block_size:
                    raise _Unusual("block too short")
                if group is not None:
                    out.group_blocks.append(len(sizes))
                    out.group_durations.append(group[0])
                    out.group_keys.append(group[1])
                heads += b[head : head + 3]
                add_size(block + block_size - (head + 3))
                if len(sizes) > _MAX_FRAMES:
                    raise _Unusual("too many frames")
        elif eid == _ENCRYPTED_BLOCK:
            raise _Unusual("encrypted block")
        pos += size
    if len(sizes) > _MAX_FRAMES:
        raise _Unusual("too many frames")
    if blocks == 0:
        raise _Unusual("a cluster without blocks")

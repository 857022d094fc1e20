"""Read the frame table of a Matroska/WebM file from its block headers.

Matroska has no complete frame index (its ``Cues`` list only some
keyframes), but every frame is one ``SimpleBlock`` (or ``BlockGroup``) whose
first bytes give the track, the time relative to its cluster and the
keyframe flag. Walking the element headers and jumping over the payloads
reads a few bytes per frame instead of the whole file through ffmpeg: about
0.6 s of CPU for a two-hour 720p film, where listing the packets with
ffmpeg reads and checksums every byte.

Timestamps are presentation times (Matroska stores them so), in
``TimestampScale`` units: ffmpeg's time base for the stream. Defensive like
:mod:`.mp4index`: anything unexpected (unknown-size clusters, laced or
encrypted blocks, compressed or per-track-scaled tracks, track kinds ffmpeg
would skip, sizes past the end of the file) returns ``None`` and the caller
lists the packets instead. Tests compare both on every Matroska file at hand.
"""

from __future__ import annotations

import mmap
import os
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
_MAX_FRAMES = 50_000_000
#: Largest Info or Tracks element we read.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Largest cluster we map at once (ffmpeg writes clusters of 5 s or 5 MB).
MAX_CLUSTER_BYTES = 256 * 1024 * 1024


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
            "codec": False,
            "default_duration": 0,
            "unusual": False,
        }
        for cid, cpos, csize in _children(b, pos, pos + size):
            if cid == _TRACK_NUMBER:
                track["number"] = _uint(b, cpos, csize)
            elif cid == _TRACK_TYPE:
                track["type"] = _uint(b, cpos, csize)
            elif cid == _CODEC_ID:
                track["codec"] = csize > 0
            elif cid == _DEFAULT_DURATION:
                track["default_duration"] = _uint(b, cpos, csize)
            elif cid in (_TRACK_TIMESTAMP_SCALE, _CONTENT_ENCODINGS, _CODEC_DELAY):
                track["unusual"] = True  # its own timing or encoding: ffmpeg's business
        tracks.append(track)
    return tracks


def read_mkv_frame_table(path: str | os.PathLike, *, stream: int) -> FrameTable | None:
    """The frame table of stream ``stream`` from the block headers, or None.

    Parameters
    ----------
    path : str or PathLike
        The Matroska or WebM file.
    stream : int
        ffmpeg's index of the video stream (the ``TrackEntry`` order).

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
            return _read(fh.fileno(), size, stream)
    except (_Unusual, OSError, IndexError, ValueError):
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


def _read(fileno: int, end_of_file: int, stream: int) -> FrameTable | None:
    # Top-level elements by small reads (a map of the whole file would count
    # every page the kernel maps around each header as resident memory).
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
    clusters = []
    while pos < segment_end:
        eid, size, pos = _header(fileno, pos)
        if size is None or pos + size > end_of_file:
            raise _Unusual("unknown or oversized element")
        if eid == _INFO:
            info = _payload(fileno, pos, size)
            for cid, cpos, csize in _children(info, 0, size):
                if cid == _TIMESTAMP_SCALE:
                    scale = _uint(info, cpos, csize)
        elif eid == _TRACKS:
            if tracks is not None:
                raise _Unusual("two track lists")
            tracks = _tracks(_payload(fileno, pos, size), 0, size)
        elif eid == _CLUSTER:
            clusters.append((pos, pos + size))
        pos += size
    if tracks is None or scale <= 0:
        raise _Unusual("no tracks")
    if any(t["type"] not in _STREAM_TRACK_TYPES or not t["codec"] for t in tracks):
        raise _Unusual("a track ffmpeg would skip")

    if not 0 <= stream < len(tracks) or tracks[stream]["type"] != 1 or tracks[stream]["unusual"]:
        return None
    track = tracks[stream]
    number = track["number"]
    if number is None or sum(t["number"] == number for t in tracks) != 1:
        return None
    default = track["default_duration"] // scale
    ticks, keys, durations, sizes = _blocks(fileno, clusters, number, default)
    if len(ticks) == 0:
        return None
    real = sizes > 0
    return FrameTable(
        ticks=ticks[real],
        keyframe=keys[real],
        durations=durations[real],
        time_base=Fraction(scale, 1_000_000_000),
    )


def _blocks(fileno: int, clusters, number: int, default: int):
    """(ticks, keyframe, durations, sizes) of the blocks of track ``number``.

    Each cluster is mapped on its own and unmapped after it is read: the
    process's resident memory stays about one cluster, not the whole file.
    """
    ticks: list[int] = []
    keys: list[bool] = []
    durations: list[int] = []
    sizes: list[int] = []
    for cluster_start, cluster_end in clusters:
        if cluster_end - cluster_start > MAX_CLUSTER_BYTES:
            raise _Unusual("cluster too large")
        base = cluster_start - cluster_start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(fileno, cluster_end - base, access=mmap.ACCESS_READ, offset=base) as b:
            _cluster_blocks(
                b, cluster_start - base, cluster_end - base, number, default,
                (ticks, keys, durations, sizes),
            )  # fmt: skip
    return (
        np.array(ticks, dtype=np.int64),
        np.array(keys, dtype=bool),
        np.array(durations, dtype=np.int64),
        np.array(sizes, dtype=np.int64),
    )


def _cluster_blocks(b, start: int, end: int, number: int, default: int, out) -> None:
    """Append the blocks of track ``number`` in one cluster to the ``out`` lists."""
    ticks, keys, durations, sizes = out
    cluster_time = None
    pos = start
    append_tick, append_key = ticks.append, keys.append
    append_duration, append_size = durations.append, sizes.append
    while pos < end:
        if b[pos] == _SIMPLE_BLOCK and cluster_time is not None and b[pos + 1] & 0xF0:
            # The common case, inlined (a quarter of the time of the general
            # path): a SimpleBlock with a 1-4 byte size and a 1-byte track.
            first = b[pos + 1]
            n = 1 if first & 0x80 else 2 if first & 0x40 else 3 if first & 0x20 else 4
            size = int.from_bytes(b[pos + 1 : pos + 1 + n], "big") & ((1 << (7 * n)) - 1)
            block = pos + 1 + n
            track = b[block]
            if size != (1 << (7 * n)) - 1 and track & 0x80 and block + size <= end:
                if track & 0x7F == number:
                    flags = b[block + 3]
                    if flags & 0x06:
                        raise _Unusual("laced block")
                    relative = int.from_bytes(b[block + 1 : block + 3], "big", signed=True)
                    append_tick(cluster_time + relative)
                    append_key(flags & 0x80 != 0)
                    append_duration(default)
                    append_size(size - 4)
                pos = block + size
                continue
        eid, pos = _id(b, pos)
        size, pos = _size(b, pos)
        if size is None or pos + size > end:
            raise _Unusual("block size")
        if eid == _TIMESTAMP:
            cluster_time = _uint(b, pos, size)
        elif eid in (_SIMPLE_BLOCK, _BLOCK_GROUP):
            if cluster_time is None:
                raise _Unusual("block before the cluster time")
            if eid == _SIMPLE_BLOCK:
                block, block_size, duration, key = pos, size, default, None
            else:
                block = None
                duration, key = default, True
                for cid, cpos, csize in _children(b, pos, pos + size):
                    if cid == _BLOCK:
                        block, block_size = cpos, csize
                    elif cid == _BLOCK_DURATION:
                        duration = _uint(b, cpos, csize)
                    elif cid == _REFERENCE_BLOCK:
                        key = False
                if block is None:
                    raise _Unusual("block group without a block")
            track, head = _size(b, block)
            if track == number:
                flags = b[head + 2]
                if flags & 0x06:
                    raise _Unusual("laced block")
                relative = int.from_bytes(b[head : head + 2], "big", signed=True)
                ticks.append(cluster_time + relative)
                keys.append(bool(flags & 0x80) if key is None else key)
                durations.append(duration)
                sizes.append(block + block_size - (head + 3))
                if len(ticks) > _MAX_FRAMES:
                    raise _Unusual("too many frames")
        elif eid == _ENCRYPTED_BLOCK:
            raise _Unusual("encrypted block")
        pos += size
    if len(ticks) > _MAX_FRAMES:
        raise _Unusual("too many frames")

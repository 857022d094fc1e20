"""Read the frame table of a Matroska/WebM file from its block headers.

Matroska has no complete frame index (its ``Cues`` list only some
keyframes), but every frame is one ``SimpleBlock`` (or ``BlockGroup``) whose
first bytes give the track, the time relative to its cluster and the
keyframe flag. The file is read front to back through a window of a
megabyte (:mod:`.file_window`); a Python walk over each cluster's element
headers jumps over the payloads and notes only where each block of the
track is (one ``list.append`` a block), numpy copies the three header bytes
of the noted blocks out of the window before it moves, and decodes the
times and flags of all of them at once at the end: 0.21-0.23 s of CPU for
a two-hour 720p film (180,000 frames; 0.24-0.26 s when the walk copied the
bytes itself, 0.6 s with the fields decoded per block), where listing the
packets with ffmpeg reads and checksums every byte. What a first open of
such a film costs beyond that is reading its 675 MB from the disk when it
is not in the page cache (see :mod:`.file_window`), which a thread asks the
kernel to do ahead of the walk (:mod:`.read_ahead`).

Timestamps are presentation times (Matroska stores them so), in
``TimestampScale`` units: ffmpeg's time base for the stream. Defensive like
:mod:`.mp4index`: anything unexpected (unknown-size clusters, laced or
encrypted blocks, compressed or per-track-scaled tracks, track kinds ffmpeg
would skip, a CodecID ffmpeg times otherwise or that is not the probed
codec's (:mod:`.mkvtracks`), sizes past the end of the file, times of 2**62
or more, empty clusters, more clusters than the file's size allows, a block
of any track too short for its header, a parse over ``PARSE_BUDGET_S``)
returns ``None`` and the caller lists the packets instead. Tests compare
both on every Matroska file at hand.
"""

from __future__ import annotations

import os
import time
from array import array
from fractions import Fraction
from itertools import repeat
from pathlib import Path

import numpy as np

from napari_video_extract.core.ebml import (
    TIME_LIMIT,
    Unusual,
    children,
    element_id,
    element_size,
    limited,
    uint,
)
from napari_video_extract.core.file_window import FileWindow
from napari_video_extract.core.frame_index import FrameTable
from napari_video_extract.core.mkvtracks import read_tracks, video_track_number
from napari_video_extract.core.read_ahead import ReadAhead

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
#: Most frames we read: about 23 hours at 60 fps (3 bytes each in memory
#: while read, 8 more for a block without payload, 17 for a BlockGroup's).
_MAX_FRAMES = 5_000_000
#: Seconds the whole parse may take (a two-hour film takes under one): past
#: it the caller lists the packets, whose run has its own timeout.
PARSE_BUDGET_S = 10.0
#: Blocks or elements between two checks of the budget and the frame cap
#: (and copies of the header bytes noted: memory for ~1,000 blocks).
_CHECK_EVERY = 1 << 10
#: Largest Info or Tracks element we read.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Largest cluster we read at once (ffmpeg writes clusters of 5 s or 5 MB);
#: a file with a larger one has its packets listed instead. Clusters are
#: read, never memory-mapped: a file that shrinks while it is walked then
#: gives a short read, where a map of it would kill the process (SIGBUS).
MAX_CLUSTER_BYTES = 64 * 1024 * 1024
#: Top-level elements allowed: a few headers plus one cluster per 4 KiB of
#: file (real clusters hold seconds of video: tens of kilobytes and more).
_MIN_TOP_LEVEL = 256
_BYTES_PER_TOP_LEVEL = 4096
#: Where a block's time and flags are, from the byte before them.
_HEAD_OFFSETS = np.arange(1, 4, dtype=np.intp)


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
            fileno = fh.fileno()
            size = os.fstat(fileno).st_size
            if size < 16:
                return None
            with ReadAhead(fileno, size) as ahead:
                window = FileWindow(fileno, size, read_ahead=ahead)
                return _read(fileno, size, stream, codec, window)
    except (Unusual, OSError, IndexError, ValueError, OverflowError):
        return None


def _header(fileno: int, pos: int) -> tuple[int, int | None, int]:
    """(id, size, payload position) of the element at ``pos``, read from the file."""
    head = os.pread(fileno, 12, pos)
    eid, at = element_id(head, 0)
    size, at = element_size(head, at)
    return eid, size, pos + at


def _payload(fileno: int, pos: int, size: int) -> bytes:
    if size > MAX_HEADER_BYTES:
        raise Unusual("header element too large")
    data = os.pread(fileno, size, pos)
    if len(data) != size:
        raise Unusual("truncated header element")
    return data


def _read(
    fileno: int, end_of_file: int, stream: int, codec: str | None, window: FileWindow
) -> FrameTable | None:
    # Top-level elements by small reads, clusters through the window (a map
    # of the whole file would count every page the kernel maps around each
    # header as resident memory).
    deadline = time.monotonic() + PARSE_BUDGET_S
    eid, size, pos = _header(fileno, 0)
    if eid != _EBML:
        raise Unusual("not EBML")
    if size is None:
        raise Unusual("EBML header size")
    eid, size, pos = _header(fileno, pos + size)
    if eid != _SEGMENT:
        raise Unusual("no segment")
    segment_end = end_of_file if size is None else min(pos + size, end_of_file)
    scale = 1_000_000
    tracks = None
    number = default = None
    out = None
    budget = _MIN_TOP_LEVEL + end_of_file // _BYTES_PER_TOP_LEVEL
    while pos < segment_end:
        budget -= 1
        if budget < 0 or time.monotonic() > deadline:
            raise Unusual("too many top-level elements or too slow")
        if window.holds(pos, pos + 12):
            at = pos - window.base
            eid, at = element_id(window.data, at)
            size, at = element_size(window.data, at)
            pos = window.base + at
        else:
            eid, size, pos = _header(fileno, pos)
        if size is None or pos + size > end_of_file:
            raise Unusual("unknown or oversized element")
        if eid == _INFO:
            if number is not None:
                raise Unusual("segment info after a cluster")
            info = _payload(fileno, pos, size)
            for cid, cpos, csize in children(info, 0, size):
                if cid == _TIMESTAMP_SCALE:
                    scale = uint(info, cpos, csize)
        elif eid == _TRACKS:
            if tracks is not None:
                raise Unusual("two track lists")
            tracks = read_tracks(_payload(fileno, pos, size), 0, size)
        elif eid == _CLUSTER:
            if number is None:
                # Clusters are read as they are found (no list of them):
                # the headers they depend on must come first, as muxers write.
                if tracks is None or scale <= 0:
                    raise Unusual("a cluster before the tracks")
                number = video_track_number(tracks, stream, codec)
                if number is None:
                    return None
                default = limited(tracks[stream]["default_duration"] // scale)
                out = _Found(number, default)
            _cluster(window, pos, pos + size, out, deadline)
        pos += size
    if number is None:
        return None  # no clusters, or no video track this reader can time
    out.flush(window.data)
    if not out:
        return None
    ticks, keys, durations, real = out.table()
    if time.monotonic() > deadline:
        raise Unusual("too slow")  # the budget covers the whole parse
    if len(ticks) == 0:
        return None
    if ticks.max() >= TIME_LIMIT:
        raise Unusual("time out of range")
    return FrameTable(
        ticks=ticks[real].astype(np.int64),
        keyframe=keys[real].astype(bool),
        durations=durations[real].astype(np.int64),
        time_base=Fraction(scale, 1_000_000_000),
    )


class _Found:
    """What the walk keeps of track ``number``'s blocks, in file order.

    The walk notes where each block of the track is in the buffer it walks
    (:attr:`pending`: the position of the byte before its three header
    bytes), and :meth:`flush` copies those bytes out with numpy before the
    buffer changes: the walk's Python step per block appends one number.
    Also kept: the blocks without payload, the cluster times and the
    BlockGroups' fields where they apply. :meth:`table` turns it all into
    the frame table.
    """

    def __init__(self, number: int, default: int) -> None:
        self.number, self.default = number, default
        self.pending: list[int] = []
        self.flushed = 0
        # Three header bytes (time, two bytes, and flags) per flushed block.
        self.heads: list[np.ndarray] = []
        self.empty = array("q")  # blocks with no payload (not frames)
        self.times: list[tuple[int, int]] = []  # (first block, cluster time)
        # BlockGroups' fields in three columns (17 bytes a group, where a
        # dict of tuples took ~170: a file of BlockGroups only may hold
        # _MAX_FRAMES of them), written into the table by numpy at once.
        self.group_blocks = array("q")
        self.group_durations = array("q")
        self.group_keys = array("b")

    def __len__(self) -> int:
        return self.flushed + len(self.pending)

    def flush(self, buffer) -> None:
        """Copy the pending blocks' header bytes out of ``buffer`` (the one walked).

        The walk notes only blocks that hold their three header bytes, so
        every byte read here is inside its block.
        """
        if not self.pending:
            return
        where = np.array(self.pending, dtype=np.intp)[:, None] + _HEAD_OFFSETS
        # No name holds the array over ``buffer``: the window can go next.
        self.heads.append(np.frombuffer(buffer, dtype=np.uint8)[where])
        self.flushed += len(where)
        self.pending.clear()
        if self.flushed > _MAX_FRAMES:
            raise Unusual("too many frames")

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ticks, keys, durations, real)`` of the blocks found (all flushed)."""
        head = np.concatenate(self.heads) if self.heads else np.zeros((0, 3), np.uint8)
        flags = head[:, 2]
        if (flags & 0x06).any():
            raise Unusual("laced block")
        relative = (head[:, 0].astype(np.int64) << 8) | head[:, 1]
        relative -= (relative >= 0x8000) * 0x10000  # signed 16 bits
        count = len(head)
        first = np.array([block for block, _ in self.times], dtype=np.int64)
        cluster = np.array([value for _, value in self.times], dtype=np.int64)
        ticks = cluster[np.searchsorted(first, np.arange(count), side="right") - 1] + relative
        if (ticks < 0).any():
            raise Unusual("negative time")
        keys = (flags & 0x80) != 0
        durations = np.full(count, self.default, dtype=np.int64)
        if self.group_blocks:
            groups = np.frombuffer(self.group_blocks, dtype=np.int64)
            durations[groups] = np.frombuffer(self.group_durations, dtype=np.int64)
            keys[groups] = np.frombuffer(self.group_keys, dtype=np.int8) != 0
        real = np.ones(count, dtype=bool)
        real[np.frombuffer(self.empty, dtype=np.int64)] = False
        return ticks, keys, durations, real


def _cluster(window: FileWindow, start: int, end: int, out: _Found, deadline: float) -> None:
    """Add the blocks of track ``out.number`` in the cluster at [start, end) to ``out``.

    The cluster is walked in the window, read anew when the cluster is not
    in it (at most :data:`MAX_CLUSTER_BYTES`: the process holds about one
    window or one cluster).
    """
    if end - start > MAX_CLUSTER_BYTES:
        raise Unusual("cluster too large")
    if not window.holds(start, end):
        out.flush(window.data)  # before the window moves
    at = window.hold(start, end)
    _cluster_blocks(window.data, at, at + end - start, out, deadline)


def _cluster_blocks(b, start: int, end: int, out: _Found, deadline: float) -> None:
    """Walk one cluster's element headers; note where ``out.number``'s blocks are.

    The walk is the sequential part (each size leads to the next header) and
    does as little per block as it can: numpy copies the header bytes out
    (:meth:`_Found.flush`) and decodes the times and flags of all blocks at
    once (:meth:`_Found.table`).
    """
    number, default = out.number, out.default
    mine = 0x80 | number if number < 0x80 else -1  # its one-byte track number
    pending = out.pending
    note = pending.append
    simple_block = _SIMPLE_BLOCK
    checks = repeat(None, _CHECK_EVERY)
    first_block = len(out)
    others = False  # a block of another track seen
    cluster_time = None
    pos = start
    steps = 0
    while pos < end:
        if cluster_time is not None:
            # The common case, inlined: SimpleBlocks with a 1-3 byte size, a
            # one-byte track number and a payload, until anything else.
            for _ in checks:
                if pos >= end or b[pos] != simple_block:
                    break
                first = b[pos + 1]
                if first & 0x80:
                    size, block = first & 0x7F, pos + 2
                    if size == 0x7F:
                        break
                elif first & 0x40:
                    size, block = ((first & 0x3F) << 8) | b[pos + 2], pos + 3
                    if size == 0x3FFF:
                        break
                elif first & 0x20:
                    size = ((first & 0x1F) << 16) | (b[pos + 2] << 8) | b[pos + 3]
                    block = pos + 4
                    if size == 0x1FFFFF:
                        break
                else:
                    break
                following = block + size
                if following > end or size <= 4:
                    break
                track = b[block]
                if track == mine:
                    note(block)
                elif track & 0x80:
                    others = True
                else:
                    break
                pos = following
            else:
                checks = repeat(None, _CHECK_EVERY)
                out.flush(b)
                if time.monotonic() > deadline:
                    raise Unusual("too slow")
                continue
            if pos >= end:
                break
        steps += 1
        if steps == _CHECK_EVERY:
            steps = 0
            out.flush(b)
            if time.monotonic() > deadline:
                raise Unusual("too slow")
        eid, pos = element_id(b, pos)
        size, pos = element_size(b, pos)
        if size is None or pos + size > end:
            raise Unusual("block size")
        if eid == _TIMESTAMP:
            cluster_time = limited(uint(b, pos, size))
            out.times.append((len(out), cluster_time))
        elif eid in (_SIMPLE_BLOCK, _BLOCK_GROUP):
            if cluster_time is None:
                raise Unusual("block before the cluster time")
            group = None
            if eid == _SIMPLE_BLOCK:
                block, block_size = pos, size
            else:
                block = None
                duration, key = default, True
                for cid, cpos, csize in children(b, pos, pos + size):
                    if cid == _BLOCK:
                        block, block_size = cpos, csize
                    elif cid == _BLOCK_DURATION:
                        duration = limited(uint(b, cpos, csize))
                    elif cid == _REFERENCE_BLOCK:
                        key = False
                if block is None:
                    raise Unusual("block group without a block")
                group = (duration, key)
            track, head = element_size(b, block)
            if head + 3 > block + block_size:
                raise Unusual("block too short")  # of any track: not a file we know
            if track == number:
                if group is not None:
                    out.group_blocks.append(len(out))
                    out.group_durations.append(group[0])
                    out.group_keys.append(group[1])
                if head + 3 == block + block_size:
                    out.empty.append(len(out))
                note(head - 1)  # as the fast path notes a block
                if len(pending) >= _CHECK_EVERY:
                    out.flush(b)
            else:
                others = True
        elif eid == _ENCRYPTED_BLOCK:
            raise Unusual("encrypted block")
        pos += size
    if len(out) > _MAX_FRAMES:
        raise Unusual("too many frames")
    if len(out) == first_block and not others:
        raise Unusual("a cluster without blocks")

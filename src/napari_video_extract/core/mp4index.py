"""Read the frame table of an MP4/MOV file from its index, without the media data.

An MP4 (and QuickTime MOV, M4V, 3GP) file carries a complete sample table in
its ``moov`` box: per-sample decode deltas (``stts``), composition offsets
(``ctts``), sizes (``stsz``), sync samples (``stss``) and the edit list
(``elst``). Reading it takes milliseconds whatever the length of the film,
where listing every packet with ffmpeg reads the whole file (seconds for an
hour of video). This module parses only what is needed, defensively: any
surprise (fragmented file, several edits, inconsistent tables) returns
``None`` and the caller falls back to ffmpeg's packet listing, which is
always right.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Mp4FrameTable", "read_mp4_frame_table"]

#: Largest moov box we are willing to read (a 10-hour film's is ~30 MB).
MAX_MOOV_BYTES = 256 * 1024 * 1024
#: Largest sample count we accept (guards against hostile tables).
MAX_SAMPLES = 50_000_000

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


@dataclass(frozen=True)
class Mp4FrameTable:
    """Displayed frames of one video track, in display order.

    Attributes
    ----------
    ticks : numpy.ndarray
        Composition (presentation) times in ``timescale`` units, sorted.
    keyframe : numpy.ndarray of bool
        Whether each displayed frame is a sync sample.
    durations : numpy.ndarray
        Sample durations in ``timescale`` units.
    timescale : int
        Ticks per second of the track.
    """

    ticks: np.ndarray
    keyframe: np.ndarray
    durations: np.ndarray
    timescale: int


class _Malformed(Exception):
    pass


def _iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None):
    """Yield (type, payload_start, box_end) of the boxes in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _Malformed("truncated box header")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise _Malformed(f"bad box size for {kind!r}")
        yield bytes(kind), pos + header, pos + size
        pos += size


def _find_moov(path: Path) -> bytes | None:
    """The moov box payload, or None (fragmented file, no moov, not MP4)."""
    with open(path, "rb") as fh:
        file_size = os.fstat(fh.fileno()).st_size
        pos = 0
        moov = None
        first = True
        while pos + 8 <= file_size:
            fh.seek(pos)
            head = fh.read(16)
            if len(head) < 8:
                return None
            size, kind = struct.unpack_from(">I4s", head, 0)
            header = 8
            if size == 1:
                if len(head) < 16:
                    return None
                (size,) = struct.unpack_from(">Q", head, 8)
                header = 16
            elif size == 0:
                size = file_size - pos
            if first and kind not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
                return None  # not an ISO-BMFF file
            first = False
            if size < header or pos + size > file_size:
                return None  # truncated: let ffmpeg decide what is readable
            if kind in (b"moof", b"mfra"):
                return None  # fragmented: the moov holds no complete table
            if kind == b"moov":
                if size > MAX_MOOV_BYTES:
                    return None
                fh.seek(pos + header)
                moov = fh.read(size - header)
            pos += size
        return moov


def _full_box(data: bytes, start: int) -> tuple[int, int]:
    """(version, payload start after version+flags)."""
    return data[start], start + 4


def _read_table(data: bytes, start: int, end: int, kind: bytes) -> dict:
    version, p = _full_box(data, start)
    if kind == b"stts" or kind == b"ctts":
        (n,) = struct.unpack_from(">I", data, p)
        if n > MAX_SAMPLES or p + 4 + 8 * n > end:
            raise _Malformed(f"bad {kind!r}")
        arr = np.frombuffer(data, dtype=">u4", count=2 * n, offset=p + 4).reshape(n, 2)
        counts = arr[:, 0].astype(np.int64)
        values = arr[:, 1].astype(np.int64)
        if kind == b"ctts":
            # Offsets are signed in version 1 and, in practice, in version 0 too
            # (ffmpeg reads them as signed).
            values = arr[:, 1].astype(np.uint32).view(np.int32).astype(np.int64)
        return {"counts": counts, "values": values}
    if kind == b"stss":
        (n,) = struct.unpack_from(">I", data, p)
        if n > MAX_SAMPLES or p + 4 + 4 * n > end:
            raise _Malformed("bad stss")
        return {"sync": np.frombuffer(data, dtype=">u4", count=n, offset=p + 4).astype(np.int64)}
    if kind == b"stsz":
        sample_size, n = struct.unpack_from(">II", data, p)
        if n > MAX_SAMPLES:
            raise _Malformed("bad stsz")
        if sample_size:
            return {"sizes": np.full(n, sample_size, dtype=np.int64)}
        if p + 8 + 4 * n > end:
            raise _Malformed("bad stsz")
        return {"sizes": np.frombuffer(data, dtype=">u4", count=n, offset=p + 8).astype(np.int64)}
    if kind == b"mdhd":
        if version == 1:
            timescale, duration = struct.unpack_from(">IQ", data, p + 16)
        else:
            timescale, duration = struct.unpack_from(">II", data, p + 8)
        return {"timescale": timescale, "duration": duration}
    if kind == b"mvhd":
        # Only the movie timescale is used (edit list durations are in it).
        (timescale,) = struct.unpack_from(">I", data, p + (16 if version == 1 else 8))
        return {"timescale": timescale}
    if kind == b"hdlr":
        return {"handler": bytes(data[p + 4 : p + 8])}
    if kind == b"elst":
        (n,) = struct.unpack_from(">I", data, p)
        entries = []
        q = p + 4
        for _ in range(min(n, 1000)):
            if version == 1:
                seg, media_time = struct.unpack_from(">Qq", data, q)
                q += 16
            else:
                seg, media_time = struct.unpack_from(">Ii", data, q)
                q += 8
            rate = struct.unpack_from(">i", data, q)[0]
            q += 4
            entries.append((seg, media_time, rate))
        if n > 1000:
            raise _Malformed("too many edits")
        return {"edits": entries}
    return {}


def _collect_traks(moov: bytes) -> tuple[int, list[dict]]:
    movie_timescale = 0
    traks = []

    def walk(start: int, end: int, into: dict) -> None:
        for kind, p, e in _iter_boxes(moov, start, end):
            if kind in _CONTAINERS:
                walk(p, e, into)
            elif kind in (b"stts", b"ctts", b"stss", b"stsz", b"mdhd", b"hdlr", b"elst"):
                if kind == b"hdlr" and "hdlr" in into:
                    continue  # the media handler comes first (mdia/hdlr)
                into[kind.decode()] = _read_table(moov, p, e, kind)

    for kind, p, e in _iter_boxes(moov):
        if kind == b"mvhd":
            movie_timescale = _read_table(moov, p, e, kind)["timescale"]
        elif kind == b"trak":
            info: dict = {}
            walk(p, e, info)
            traks.append(info)
    return movie_timescale, traks


def read_mp4_frame_table(
    path: str | os.PathLike, *, track: int | None = None
) -> Mp4FrameTable | None:
    """Displayed frames of a video track of an MP4/MOV file, from its index.

    Parameters
    ----------
    path : path
        The file.
    track : int, optional
        Index of the track (ffmpeg's stream index, which follows trak order);
        default the first video track.

    Returns
    -------
    Mp4FrameTable or None
        None when the file is not a plain (non-fragmented) ISO-BMFF file, or
        its tables are unusual (several edits, inconsistent counts): the caller
        must then list packets with ffmpeg.
    """
    try:
        moov = _find_moov(Path(path))
        if moov is None:
            return None
        movie_timescale, traks = _collect_traks(moov)
        if track is None:
            candidates = [t for t in traks if t.get("hdlr", {}).get("handler") == b"vide"]
            if not candidates:
                return None
            trak = candidates[0]
        else:
            if track >= len(traks):
                return None
            trak = traks[track]
            if trak.get("hdlr", {}).get("handler") != b"vide":
                return None
        return _frame_table(trak, movie_timescale)
    except (_Malformed, struct.error, ValueError, OSError, KeyError, IndexError):
        return None


def _frame_table(trak: dict, movie_timescale: int) -> Mp4FrameTable | None:
    if "stts" not in trak or "stsz" not in trak or "mdhd" not in trak:
        return None
    timescale = int(trak["mdhd"]["timescale"])
    if timescale <= 0:
        return None
    stts = trak["stts"]
    n = int(stts["counts"].sum())
    sizes = trak["stsz"]["sizes"]
    if n == 0 or n != len(sizes) or n > MAX_SAMPLES:
        return None
    deltas = np.repeat(stts["values"], stts["counts"])
    dts = np.concatenate([[0], np.cumsum(deltas[:-1])]).astype(np.int64)
    cts = dts.copy()
    if "ctts" in trak:
        ctts = trak["ctts"]
        if int(ctts["counts"].sum()) != n:
            return None
        cts = dts + np.repeat(ctts["values"], ctts["counts"])
    if "stss" in trak:
        key = np.zeros(n, dtype=bool)
        sync = trak["stss"]["sync"] - 1
        if len(sync) and (sync.min() < 0 or sync.max() >= n):
            return None
        key[sync] = True
    else:
        key = np.ones(n, dtype=bool)
    shown = sizes > 0
    edits = [e for e in trak.get("elst", {}).get("edits", []) if e[1] != -1]
    if len(edits) > 1:
        return None  # several edits: leave it to ffmpeg
    if edits:
        seg, media_time, rate = edits[0]
        if rate != 0x10000 or movie_timescale <= 0:
            return None
        shown &= cts >= media_time
        if seg > 0:
            end = media_time + seg * timescale / movie_timescale
            shown &= cts < end - 1e-9
    if not shown.any():
        return None
    ticks = cts[shown]
    order = np.argsort(ticks, kind="stable")
    ticks = ticks[order]
    if len(ticks) > 1 and not np.all(np.diff(ticks) > 0):
        return None  # duplicate presentation times: let ffmpeg sort it out
    return Mp4FrameTable(
        ticks=ticks,
        keyframe=key[shown][order],
        durations=deltas[shown][order],
        timescale=timescale,
    )

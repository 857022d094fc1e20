"""A per-file cache of the probe's findings, kept in the user's cache folder.

Listing every packet of a long video (or parsing a large MP4 index), opening
the file and decoding its first frame are the slow parts of
:func:`~napari_video_extract.core.probe.probe`. What they give (the frame
table, the stream header facts, the first frame's timestamp and rotation) is
stored once per file, so a later probe of the same file (the reader, the CLI,
Dask workers on the same machine) opens no decoder and runs no ffmpeg.

* The cache lives in the user's cache folder (``$XDG_CACHE_HOME`` or
  ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
  Windows, under ``napari-video-extract/frame-index``), or in
  ``$NAPARI_VIDEO_EXTRACT_CACHE_DIR``: never beside the user's video.
* An entry is keyed on the file's absolute path, size, modification and
  change times, device and inode, and repeats them inside, so a changed or replaced
  file is probed again, never served a stale entry (a file's change time
  cannot be set back by its owner).
* Every stored fact was read from a structured field (PyAV's stream, codec
  and frame fields, ffmpeg's per-frame statistics pipe, the container's own
  index), never from log text a file can write into.
* An entry is one small binary file (:data:`ENTRY_SUFFIX`): a fixed header
  (magic, format version, lengths, the numbers), the identity and names as
  text, the three arrays raw, and a CRC-32 of all of it. Reading it is one
  ``read`` and a few ``numpy.frombuffer`` views (an ``.npz`` archive cost
  ``zipfile`` and ~15 ms more); nothing in it is executed or unpickled.
  A damaged, truncated or foreign entry (wrong magic, version, length or
  checksum, inconsistent fields, a size past the probe's limits; a FIFO,
  folder or symbolic link in its place) is ignored and rewritten by the next probe;
  the cache never makes a probe fail. Entries are written atomically
  (temporary file in the same folder, then rename).
* Only what reading needs is imported at module level: writing imports
  :mod:`tempfile` when it writes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "CACHE_DIR_ENV",
    "ENTRY_SUFFIX",
    "FrameTable",
    "ProbeRecord",
    "cache_dir",
    "file_identity",
    "load_probe_record",
    "store_probe_record",
]

#: Environment variable naming the cache folder (empty: no cache at all).
CACHE_DIR_ENV = "NAPARI_VIDEO_EXTRACT_CACHE_DIR"
#: Bumped whenever what the probe stores changes meaning.
#: 4: raw binary entries (older .npz entries are ignored); 5: H.264-in-AVI
#: entries of version 4 may hold a wrong ``first_pts`` (an older version in
#: the header is refused, and the identity, so the entry's name, differs).
_FORMAT_VERSION = 5
#: File name ending of an entry.
ENTRY_SUFFIX = ".fidx"
_MAGIC = b"NVE-FIDX"
#: magic, version, text bytes, frames; time base (num, den), stream index,
#: coded width and height, rotation; fps, container start, first pts.
_HEAD = struct.Struct("<8sIIQ6q3d")
_CRC = struct.Struct("<I")
#: Largest text part (identity and names) and frame count an entry may hold:
#: a damaged length must not make a read allocate gigabytes.
_MAX_TEXT_BYTES = 1 << 16
_MAX_FRAMES = 50_000_000


@dataclass(frozen=True, eq=False)
class FrameTable:
    """The probe's raw frame table of one video stream, in container order.

    Attributes
    ----------
    ticks, keyframe, durations : numpy.ndarray
        Presentation timestamps (int64, in ``time_base`` units), keyframe
        flags (bool) and durations (int64) of the real frame packets.
    time_base : fractions.Fraction
        Seconds per tick.
    """

    ticks: np.ndarray
    keyframe: np.ndarray
    durations: np.ndarray
    time_base: Fraction


@dataclass(frozen=True, eq=False)
class ProbeRecord:
    """Everything :func:`~napari_video_extract.core.probe.probe` reads from a file.

    Attributes
    ----------
    table : FrameTable
        The frame table of the stream.
    stream_index : int
        Index of the probed video stream in the container.
    codec, pix_fmt, container : str
        Codec, decoder pixel format and demuxer names (PyAV's fields).
    coded_size : tuple of int
        ``(width, height)`` as coded, before rotation.
    fps : float or None
        The frame rate the stream header declares.
    container_start : float
        The container's start time in seconds.
    rotation : int
        Display rotation of the first frame (degrees counter-clockwise).
    first_pts : float
        Absolute timestamp of the first decoded frame, in seconds.
    """

    table: FrameTable
    stream_index: int
    codec: str
    pix_fmt: str
    container: str
    coded_size: tuple[int, int]
    fps: float | None
    container_start: float
    rotation: int
    first_pts: float


def cache_dir() -> Path | None:
    """The frame-index cache folder (None if disabled with an empty env variable)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        return Path(configured) if configured else None
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "napari-video-extract" / "frame-index"


def file_identity(path: Path) -> list[str] | None:
    """What an entry must match: the path and the file's stat fields.

    Take it before reading the file, and pass it to :func:`store_probe_record`.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    # The device too: an inode number is unique on one file system only.
    fields = (
        _FORMAT_VERSION,
        path,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_dev,
        st.st_ino,
    )
    return [str(f) for f in fields]


def _entry(identity: list[str]) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    key = "\0".join(identity).encode("utf-8", "surrogateescape")
    # The name only picks a slot: the identity is checked inside, so a
    # collision costs a probe, never a wrong answer. Two zlib checksums
    # (64 bits) instead of a cryptographic hash spare importing hashlib
    # (OpenSSL) on every cached probe.
    return folder / f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}{ENTRY_SUFFIX}"


def _aligned(n: int) -> int:
    return (n + 7) & ~7


def load_probe_record(path: Path) -> ProbeRecord | None:
    """The cached record of ``path`` (absolute), or None if absent, stale or damaged."""
    identity = file_identity(path)
    entry = _entry(identity) if identity else None
    if entry is None:
        return None
    try:
        return _parse_entry(entry, identity)
    except Exception:  # absent or any damage: the cache is only a shortcut
        return None


#: How an entry is opened: never blocking (a FIFO put in its place opens at
#: once, and is then refused by ``fstat``), never through a symbolic link
#: (entries are written by rename, never as links), in binary mode on Windows.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
)


def _parse_entry(entry: Path, identity: list[str]) -> ProbeRecord | None:
    """The record in ``entry`` if it is whole, ours, of this format and for ``identity``."""
    # One open, then checks on that descriptor: a check of the name before
    # the open would let a FIFO swapped in between block the probe.
    fd = os.open(entry, _OPEN_FLAGS)
    with open(fd, "rb", closefd=True) as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None  # a folder, FIFO or device in its place
        head = fh.read(_HEAD.size)
        if len(head) != _HEAD.size:
            return None
        magic, version, text_len, n, num, den, stream_index, width, height, rotation, *floats = (
            _HEAD.unpack(head)
        )
        if magic != _MAGIC or version != _FORMAT_VERSION:
            return None
        if text_len > _MAX_TEXT_BYTES or n > _MAX_FRAMES:
            return None
        arrays = _aligned(_HEAD.size + text_len)
        total = arrays + 17 * n + _CRC.size
        if st.st_size != total:
            return None  # truncated or padded
        buf = bytearray(total)
        buf[: _HEAD.size] = head
        view = memoryview(buf)
        if fh.readinto(view[_HEAD.size :]) != total - _HEAD.size:
            return None
    (crc,) = _CRC.unpack_from(buf, total - _CRC.size)
    if zlib.crc32(view[: total - _CRC.size]) != crc:
        return None
    fields = bytes(view[_HEAD.size : _HEAD.size + text_len]).decode("utf-8", "surrogateescape")
    fields = fields.split("\0")
    if fields[:-3] != identity:
        return None
    codec, pix_fmt, container = fields[-3:]
    # Views on the buffer just read (writable, little-endian on disk).
    ticks = np.frombuffer(buf, dtype="<i8", count=n, offset=arrays).astype(np.int64, copy=False)
    durations = np.frombuffer(buf, dtype="<i8", count=n, offset=arrays + 8 * n).astype(
        np.int64, copy=False
    )
    flags = np.frombuffer(buf, dtype=np.uint8, count=n, offset=arrays + 16 * n)
    fps, container_start, first_pts = floats
    # The limits the probe applies to what it reads from the file hold for
    # what it reads from the cache too (probe.py imported this module, so
    # the import below costs nothing).
    from napari_video_extract.core.probe import MAX_PIXELS

    if n == 0 or num <= 0 or den <= 0 or min(width, height) <= 0:
        return None
    if width * height > MAX_PIXELS or not 0 <= rotation < 360 or stream_index < 0:
        return None
    if not (np.isfinite(container_start) and np.isfinite(first_pts) and np.isfinite(fps)):
        return None
    if flags.max() > 1:
        return None
    return ProbeRecord(
        table=FrameTable(ticks, flags.view(bool), durations, Fraction(num, den)),
        stream_index=stream_index,
        codec=codec,
        pix_fmt=pix_fmt,
        container=container,
        coded_size=(width, height),
        fps=fps if fps > 0 else None,
        container_start=container_start,
        rotation=rotation,
        first_pts=first_pts,
    )


def _encode(record: ProbeRecord, identity: list[str]) -> list[bytes] | None:
    """The entry's bytes (in parts, the CRC last), or None if it cannot be stored."""
    names = [record.codec, record.pix_fmt, record.container]
    if any("\0" in field for field in (*identity, *names)):
        return None
    text = "\0".join([*identity, *names]).encode("utf-8", "surrogateescape")
    table = record.table
    n = len(table.ticks)
    if len(text) > _MAX_TEXT_BYTES or n > _MAX_FRAMES:
        return None
    if not n == len(table.keyframe) == len(table.durations):
        return None
    head = _HEAD.pack(
        _MAGIC,
        _FORMAT_VERSION,
        len(text),
        n,
        table.time_base.numerator,
        table.time_base.denominator,
        record.stream_index,
        *record.coded_size,
        record.rotation,
        record.fps or 0.0,
        record.container_start,
        record.first_pts,
    )
    parts = [
        head,
        text,
        bytes(_aligned(len(head) + len(text)) - len(head) - len(text)),
        np.asarray(table.ticks, dtype="<i8").tobytes(),
        np.asarray(table.durations, dtype="<i8").tobytes(),
        np.asarray(table.keyframe, dtype=bool).astype(np.uint8).tobytes(),
    ]
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    parts.append(_CRC.pack(crc))
    return parts


def store_probe_record(path: Path, record: ProbeRecord, *, before: list[str] | None) -> None:
    """Cache ``record`` for ``path``, if the file is unchanged since ``before``.

    ``before`` is the identity taken before the file was read (see
    :func:`file_identity`): a file that changed while it was probed is not
    cached. Failures (read-only or full disk) are ignored.
    """
    identity = file_identity(path)
    entry = _entry(identity) if identity else None
    if entry is None or identity != before:
        return
    parts = _encode(record, identity)
    if parts is None:
        return
    import tempfile  # only writing needs it (and shutil, random... with it)

    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ENTRY_SUFFIX, dir=entry.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.writelines(parts)
            os.replace(tmp, entry)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

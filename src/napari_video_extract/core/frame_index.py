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
* Entries are numpy ``.npz`` files loaded without pickle, written atomically
  (temporary file, then rename). A damaged, unreadable or incomplete entry is
  ignored; the cache never makes a probe fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "CACHE_DIR_ENV",
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
_FORMAT_VERSION = 3  # 3: the identity holds st_dev (older entries are ignored)


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
    digest = hashlib.sha256("\0".join(identity).encode("utf-8", "surrogateescape")).hexdigest()
    return folder / f"{digest}.npz"


def load_probe_record(path: Path) -> ProbeRecord | None:
    """The cached record of ``path`` (absolute), or None if absent, stale or damaged."""
    identity = file_identity(path)
    entry = _entry(identity) if identity else None
    if entry is None or not entry.is_file():
        return None
    try:
        with np.load(entry, allow_pickle=False) as data:
            if data["identity"].tolist() != identity:
                return None
            ticks = data["ticks"].astype(np.int64)
            keyframe = data["keyframe"].astype(bool)
            durations = data["durations"].astype(np.int64)
            num, den = (int(v) for v in data["time_base"])
            stream_index, width, height, rotation = (int(v) for v in data["ints"])
            fps, container_start, first_pts = (float(v) for v in data["floats"])
            codec, pix_fmt, container = (str(v) for v in data["names"])
    except Exception:  # any damage: the cache is only a shortcut
        return None
    if not len(ticks) == len(keyframe) == len(durations) or num <= 0 or den <= 0:
        return None
    if min(width, height) <= 0 or not (np.isfinite(container_start) and np.isfinite(first_pts)):
        return None
    return ProbeRecord(
        table=FrameTable(ticks, keyframe, durations, Fraction(num, den)),
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
    table = record.table
    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=entry.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    identity=np.array(identity),
                    ticks=np.asarray(table.ticks, dtype=np.int64),
                    keyframe=np.asarray(table.keyframe, dtype=bool),
                    durations=np.asarray(table.durations, dtype=np.int64),
                    time_base=np.array(
                        [table.time_base.numerator, table.time_base.denominator], dtype=np.int64
                    ),
                    ints=np.array(
                        [record.stream_index, *record.coded_size, record.rotation], dtype=np.int64
                    ),
                    floats=np.array(
                        [record.fps or 0.0, record.container_start, record.first_pts],
                        dtype=np.float64,
                    ),
                    names=np.array([record.codec, record.pix_fmt, record.container]),
                )
            os.replace(tmp, entry)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

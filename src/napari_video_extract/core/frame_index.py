"""A per-file cache of the probe's frame table, kept in the user's cache folder.

Listing every packet of a long video (or parsing a large MP4 index) is the
slow part of :func:`~napari_video_extract.core.probe.probe`. The table it
gives (timestamps, keyframe flags, durations, time base) is stored once per
file and reused by every later probe: the reader, the CLI and Dask workers on
the same machine.

* The cache lives in the user's cache folder (``$XDG_CACHE_HOME`` or
  ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
  Windows, under ``napari-video-extract/frame-index``), or in
  ``$NAPARI_VIDEO_EXTRACT_CACHE_DIR``: never beside the user's video.
* An entry is keyed on the file's absolute path, size, modification and
  change times and inode, and repeats them inside, so a changed or replaced
  file is scanned again, never served a stale table.
* Entries are numpy ``.npz`` files loaded without pickle, written atomically
  (temporary file, then rename). A damaged or unreadable entry is ignored;
  the cache never makes a probe fail.
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

__all__ = ["CACHE_DIR_ENV", "FrameTable", "cache_dir", "load_frame_table", "store_frame_table"]

#: Environment variable naming the cache folder (empty: no cache at all).
CACHE_DIR_ENV = "NAPARI_VIDEO_EXTRACT_CACHE_DIR"
#: Bumped whenever what the probe stores changes meaning.
_FORMAT_VERSION = 1


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


def _identity(path: Path, stream_index: int) -> list[str] | None:
    """What an entry must match: path, stream and the file's stat fields."""
    try:
        st = path.stat()
    except OSError:
        return None
    fields = (_FORMAT_VERSION, path, stream_index, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return [str(f) for f in (*fields, st.st_ino)]


def _entry(identity: list[str]) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256("\0".join(identity).encode("utf-8", "surrogateescape")).hexdigest()
    return folder / f"{digest}.npz"


def load_frame_table(path: Path, stream_index: int) -> FrameTable | None:
    """The cached table of ``path`` (absolute), or None if absent, stale or damaged."""
    identity = _identity(path, stream_index)
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
    except Exception:  # any damage: the cache is only a shortcut
        return None
    if not len(ticks) == len(keyframe) == len(durations) or num <= 0 or den <= 0:
        return None
    return FrameTable(ticks, keyframe, durations, Fraction(num, den))


def store_frame_table(path: Path, stream_index: int, table: FrameTable, *, before) -> None:
    """Cache ``table`` for ``path``, if the file is unchanged since ``before``.

    ``before`` is the identity taken before the table was read (see
    :func:`file_identity`): a file that changed while it was scanned is not
    cached. Failures (read-only or full disk) are ignored.
    """
    identity = _identity(path, stream_index)
    entry = _entry(identity) if identity else None
    if entry is None or identity != before:
        return
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
                )
            os.replace(tmp, entry)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def file_identity(path: Path, stream_index: int) -> list[str] | None:
    """The identity :func:`store_frame_table` compares (take it before scanning)."""
    return _identity(path, stream_index)

"""Per-folder cache of the verification thumbnails, next to the hash cache.

Thumbnails (:data:`~napari_video_extract.core.verify.THUMB_SHAPE`, ``uint8``)
are too big for the JSON hash cache (9 KB each), so each folder gets a binary
sibling, :data:`THUMB_CACHE_NAME`::

    b"NVETHUMBS1\\n" | header length (8 bytes, little endian) | header (JSON)
    | zero padding to a multiple of 64 | one H*W block per entry

The header holds the thumbnail shape and, per entry, ``[file name, size,
st_mtime_ns, settings key]``; an entry is used only when all four match.
The data part is memory-mapped, so reading a cache costs no more than the
thumbnails asked for. Writing is atomic (temporary file in the folder, then
``os.replace``); a corrupt or foreign file is treated as an empty cache.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from napari_video_extract.core.verify import THUMB_SHAPE

__all__ = ["THUMB_CACHE_NAME", "ThumbCache"]

#: Name of the per-folder thumbnail cache file.
THUMB_CACHE_NAME = ".nve-thumbcache.bin"

_MAGIC = b"NVETHUMBS1\n"
_ALIGN = 64


class ThumbCache:
    """Thumbnails of one folder's images, read lazily from the cache file.

    Parameters
    ----------
    folder : Path
        The folder whose images the cache describes.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._index: dict[str, tuple[int, int, str, int]] = {}  # name -> (size, mtime, key, row)
        self._data: np.ndarray | None = None
        self._new: dict[str, tuple[int, int, str, np.ndarray]] = {}

    @classmethod
    def read(cls, folder: Path) -> ThumbCache:
        """The folder's cache, or an empty one when missing, unreadable or corrupt."""
        cache = cls(folder)
        path = cache.folder / THUMB_CACHE_NAME
        try:
            with open(path, "rb") as handle:
                if handle.read(len(_MAGIC)) != _MAGIC:
                    return cache
                length = int.from_bytes(handle.read(8), "little")
                if not 0 < length < 1 << 30:
                    return cache
                header = json.loads(handle.read(length).decode("utf-8"))
            if tuple(header.get("shape", ())) != THUMB_SHAPE:
                return cache
            entries = header["entries"]
            offset = _data_offset(length)
            n = len(entries)
            if n == 0:
                return cache
            if path.stat().st_size < offset + n * THUMB_SHAPE[0] * THUMB_SHAPE[1]:
                return cache  # truncated
            data = np.memmap(
                path, dtype=np.uint8, mode="r", offset=offset, shape=(n, *THUMB_SHAPE)
            )
            index = {}
            for row, (name, size, mtime_ns, key) in enumerate(entries):
                index[str(name)] = (int(size), int(mtime_ns), str(key), row)
        except (OSError, ValueError, KeyError, TypeError):
            return cls(folder)
        cache._index, cache._data = index, data
        return cache

    def get(self, name: str, size: int, mtime_ns: int, key: str) -> np.ndarray | None:
        """The thumbnail of file ``name`` if cached for this size, mtime and key."""
        new = self._new.get(name)
        if new is not None:
            return new[3] if new[:3] == (size, mtime_ns, key) else None
        entry = self._index.get(name)
        if entry is None or entry[:3] != (size, mtime_ns, key) or self._data is None:
            return None
        return np.array(self._data[entry[3]])

    def put(self, name: str, size: int, mtime_ns: int, key: str, thumb: np.ndarray) -> None:
        """Remember a thumbnail (written by :meth:`write`)."""
        self._new[name] = (int(size), int(mtime_ns), key, np.asarray(thumb, dtype=np.uint8))

    @property
    def changed(self) -> bool:
        """Thumbnails were added since the cache was read."""
        return bool(self._new)

    def write(self) -> None:
        """Write the cache atomically, forgetting files that are gone.

        A file of that name that is not one of our caches (no magic line) is
        left as it is.

        Raises
        ------
        FileExistsError
            A file of that name exists and is not our cache (it is kept).
        OSError
            The folder cannot be written.
        """
        path = self.folder / THUMB_CACHE_NAME
        try:
            with open(path, "rb") as handle:
                if handle.read(len(_MAGIC)) != _MAGIC:
                    raise FileExistsError(
                        errno.EEXIST, "exists and is not our thumbnail cache; not replaced"
                    )
        except FileNotFoundError:
            pass
        names = sorted(n for n in set(self._index) | set(self._new) if (self.folder / n).exists())
        entries = []
        for name in names:
            if name in self._new:
                size, mtime_ns, key, _ = self._new[name]
            else:
                size, mtime_ns, key, _ = self._index[name]
            entries.append([name, size, mtime_ns, key])
        header = json.dumps({"shape": list(THUMB_SHAPE), "entries": entries}).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=THUMB_CACHE_NAME + ".", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_MAGIC + len(header).to_bytes(8, "little") + header)
                handle.write(b"\0" * (_data_offset(len(header)) - handle.tell()))
                for name in names:
                    if name in self._new:
                        block = self._new[name][3]
                    else:
                        block = self._data[self._index[name][3]]
                    handle.write(np.ascontiguousarray(block, dtype=np.uint8).tobytes())
            os.replace(tmp, self.folder / THUMB_CACHE_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _data_offset(header_length: int) -> int:
    end = len(_MAGIC) + 8 + header_length
    return -(-end // _ALIGN) * _ALIGN

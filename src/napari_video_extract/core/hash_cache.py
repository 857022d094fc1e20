"""The per-folder hash cache, :data:`CACHE_NAME` (JSON), and its atomic update.

Keyed on the file name, its size and ``st_mtime_ns``, and the hash settings.
With the border crop, each hash is stored with the image's own bars and the
box the hash was made with (``boxes``): a hash made with another box (its
video's shared one) is never taken for the one asked for.
A folder's cache is written atomically (temporary file in the folder, then
``os.replace``); a file of that name that is not one of our caches is never
replaced, and reference folders are never written.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from napari_video_extract.core.borders import BorderBox
from napari_video_extract.core.thumbcache import THUMB_CACHE_NAME

__all__ = [
    "CACHE_NAME",
    "cached_boxes",
    "read_cache",
    "thumb_key",
    "update_caches",
    "update_thumb_caches",
    "write_cache",
]

#: Name of the per-folder hash cache file.
CACHE_NAME = ".nve-hashcache.json"


def read_cache(folder: Path) -> dict[str, Any]:
    path = folder / CACHE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # unreadable or corrupt cache: start afresh
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def cached_boxes(entry: Any, key: str) -> tuple[BorderBox | None, BorderBox | None]:
    """The own bars and the crop box stored with the hash of ``key``, or ``(None, None)``."""
    try:
        own, used = entry["boxes"][key]
        own_box = BorderBox(*(int(v) for v in own[:6]), blank=bool(own[6]))
        used_box = BorderBox(*(int(v) for v in used[:6]))
    except (KeyError, TypeError, ValueError, IndexError):
        return None, None
    for box in (own_box, used_box):  # a damaged cache: hash afresh
        if min(box[:6]) < 0 or box.left + box.right >= box.width:
            return None, None
        if box.top + box.bottom >= box.height or box[:2] != own_box[:2]:
            return None, None
    return own_box, used_box


def thumb_key(key: str, crop_box: BorderBox | None) -> str:
    """The thumbnail cache's key: the hash settings and the box the thumbnail was made with."""
    if crop_box is None:
        return key
    return key + ":" + ",".join(str(int(v)) for v in crop_box[:6])


def _cache_is_ours(path: Path) -> bool:
    """Absent, or a JSON object in our cache format (``version`` + ``entries``)."""
    if not os.path.lexists(path):
        return True
    if path.is_symlink() or not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "version" in data and isinstance(data.get("entries"), dict)


def write_cache(folder: Path, entries: dict[str, Any]) -> None:
    """Write the cache atomically (temp file in the folder + os.replace).

    A file of that name that is not one of our caches is left as it is
    (``FileExistsError``).
    """
    if not _cache_is_ours(folder / CACHE_NAME):
        raise FileExistsError(errno.EEXIST, "exists and is not our hash cache; not replaced")
    payload = json.dumps({"version": 1, "entries": entries}, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(prefix=CACHE_NAME + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        os.replace(tmp, folder / CACHE_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_caches(caches, files, stats, key, result, *, read_only=frozenset()) -> None:
    changed: set[Path] = set()
    for record, st in zip(files, stats, strict=True):
        if record.hash is None or st is None or record.from_cache:
            continue
        folder = record.path.parent
        if Path(os.path.abspath(folder)) in read_only:
            continue
        entries = caches[folder]
        entry = entries.get(record.path.name)
        if not (
            isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
        ):
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hashes": {}}
        entry["width"], entry["height"] = record.width, record.height
        entry.setdefault("hashes", {})[key] = record.hash.to_hex()
        if record.border_box is not None and record.crop_box is not None:
            own = [int(v) for v in record.border_box[:6]] + [int(record.border_box.blank)]
            used = [int(v) for v in record.crop_box[:6]]
            boxes = entry.get("boxes")
            if not isinstance(boxes, dict):
                boxes = entry["boxes"] = {}
            boxes[key] = [own, used]
        if record.sharpness is not None:
            entry["sharpness"] = record.sharpness
        entries[record.path.name] = entry
        changed.add(folder)
    for folder in sorted(changed):
        entries = caches[folder]
        # Forget files that are gone (moved to duplicates, deleted, renamed).
        for name in [n for n in entries if not (folder / n).exists()]:
            del entries[name]
        try:
            write_cache(folder, entries)
        except OSError as exc:
            result.cache_errors.append(f"{folder / CACHE_NAME}: {exc.strerror or exc}")


def update_thumb_caches(thumb_caches, files, stats, key, result, skip) -> None:
    for record, st in zip(files, stats, strict=True):
        if record.thumbnail is None or st is None or record.from_cache:
            continue
        cache = thumb_caches.get(record.path.parent)
        if cache is not None:
            cache.put(
                record.path.name,
                st.st_size,
                st.st_mtime_ns,
                thumb_key(key, record.crop_box),
                record.thumbnail,
            )
    for folder in sorted(thumb_caches):
        cache = thumb_caches[folder]
        if not cache.changed or Path(os.path.abspath(folder)) in skip:
            continue
        try:
            cache.write()
        except OSError as exc:
            result.cache_errors.append(f"{folder / THUMB_CACHE_NAME}: {exc.strerror or exc}")

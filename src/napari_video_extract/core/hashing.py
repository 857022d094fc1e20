"""Perceptual hashes of images, video frames and image files.

Per-image hashing lives in :mod:`~napari_video_extract.core.image_hash`, in-memory
frames in :mod:`~napari_video_extract.core.frame_hashing` (both re-exported here).
A hash is a short bit string that changes little when an image changes little.
We compute it with :mod:`imagehash` (``phash``, ``dhash``, ``ahash``, ``whash``,
``colorhash``) after normalising the image the same way whatever its source
(:mod:`~napari_video_extract.core.normalise`: EXIF orientation, transparency,
8-bit grey, a power-of-two reduction that JPEGs get from the decoder, uniform
borders cropped). Hashes are packed into ``uint64`` words
(:mod:`~napari_video_extract.core.packed_hash`); their distance is a count of
**bits**.

:func:`hash_files` hashes many files in a process pool
(:mod:`~napari_video_extract.core.hash_pool`), reusing each folder's hash
cache (:mod:`~napari_video_extract.core.hash_cache`) and, with thumbnails,
its thumbnail cache (:mod:`~napari_video_extract.core.thumbcache`).
Given the video of each image (``crop_groups``), the images of one video are
cropped with one shared box (:mod:`~napari_video_extract.core.crop_consensus`):
those whose own bars differ are decoded a second time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from napari_video_extract.core import hash_cache, hash_pool
from napari_video_extract.core.borders import BorderBox, crop_uniform_borders
from napari_video_extract.core.crop_consensus import consensus_boxes
from napari_video_extract.core.dedup_settings import (
    DEFAULT_THRESHOLDS_64,
    METHODS,
    check_method,
    default_threshold,
    hash_bits,
)
from napari_video_extract.core.frame_hashing import (
    hash_frames,
    hash_frames_and_boxes,
    hash_frames_and_thumbnails,
)
from napari_video_extract.core.hash_cache import CACHE_NAME
from napari_video_extract.core.image_folder import IMAGE_SUFFIXES
from napari_video_extract.core.image_hash import _hash_normalised, hash_image
from napari_video_extract.core.normalise import load_image, open_for_hash_and_box, thumbnail_side
from napari_video_extract.core.packed_hash import (
    PackedHash,
    hamming_bits,
    hashes_from_hex,
    hashes_to_hex,
    pack_bits,
)
from napari_video_extract.core.sharpness import file_sharpness, sharpness
from napari_video_extract.core.thumbcache import ThumbCache
from napari_video_extract.core.verify import THUMB_SHAPE

__all__ = [
    "CACHE_NAME",
    "DEFAULT_THRESHOLDS_64",
    "IMAGE_SUFFIXES",
    "METHODS",
    "FileHash",
    "HashFilesResult",
    "PackedHash",
    "crop_uniform_borders",
    "default_threshold",
    "hamming_bits",
    "hash_bits",
    "hash_files",
    "hash_frames",
    "hash_frames_and_boxes",
    "hash_frames_and_thumbnails",
    "hash_image",
    "hashes_from_hex",
    "hashes_to_hex",
    "load_image",
    "pack_bits",
    "sharpness",
]


# Bump when the normalisation changes: invalidates caches. 3: the crop box
# is stored with each hash (a hash may be made with its video's shared box).
_PIPELINE_VERSION = 3


# ------------------------------------------------------------------ files, cache


@dataclass
class FileHash:
    """Hash of one file (or why it has none).

    Attributes
    ----------
    path : Path
        The file.
    hash : PackedHash or None
        ``None`` when the file could not be decoded (see ``error``).
    width, height : int
        Pixel size of the stored image (0 when unreadable).
    size_bytes : int
        File size.
    sharpness : float or None
        Variance of the Laplacian at a 512-pixel scale, when requested.
    error : str or None
        One-line reason the file could not be hashed.
    from_cache : bool
        The hash came from the folder's hash cache.
    thumbnail : ndarray of uint8 or None
        Verification thumbnail (:data:`~napari_video_extract.core.verify.THUMB_SHAPE`),
        when requested.
    border_box : BorderBox or None
        The image's own uniform bars (``None`` without ``crop_borders``).
    crop_box : BorderBox or None
        The box the hash and thumbnail were made with: ``border_box``, or the
        one shared by the stills of its video.
    """

    path: Path
    hash: PackedHash | None
    width: int = 0
    height: int = 0
    size_bytes: int = 0
    sharpness: float | None = None
    error: str | None = None
    from_cache: bool = False
    thumbnail: np.ndarray | None = field(default=None, repr=False)
    border_box: BorderBox | None = None
    crop_box: BorderBox | None = None


@dataclass
class HashFilesResult:
    """What :func:`hash_files` did.

    Attributes
    ----------
    files : list of FileHash
        One record per input path, in input order.
    n_bits : int
        Bits per hash.
    cache_hits : int
        Files whose hash came from a cache (not re-opened).
    hashed : int
        Files opened and hashed in this call.
    failed : int
        Files that could not be hashed.
    recropped : int
        Files hashed (again) with their video's shared crop box.
    cache_errors : list of str
        Caches that could not be read or written (the run goes on without).
    """

    files: list[FileHash] = field(default_factory=list)
    n_bits: int = 64
    cache_hits: int = 0
    hashed: int = 0
    failed: int = 0
    recropped: int = 0
    cache_errors: list[str] = field(default_factory=list)

    def hash_array(self) -> np.ndarray:
        """Packed hashes of the readable files, shape (n_readable, W)."""
        n_words = max(1, math.ceil(self.n_bits / 64))
        rows = [f.hash.words for f in self.files if f.hash is not None]
        return np.array(rows, dtype=np.uint64).reshape(len(rows), n_words)

    def thumbnail_array(self) -> np.ndarray:
        """Thumbnails of the readable files, shape (n_readable, *THUMB_SHAPE).

        Raises
        ------
        ValueError
            The thumbnails were not requested (``with_thumbnails=False``).
        """
        readable = [f for f in self.files if f.hash is not None]
        out = np.zeros((len(readable), *THUMB_SHAPE), dtype=np.uint8)
        for k, record in enumerate(readable):
            if record.thumbnail is None:
                raise ValueError(f"{record.path}: no thumbnail (hash_files(with_thumbnails=True))")
            out[k] = record.thumbnail
        return out


def _settings_key(method: str, hash_size: int, crop_borders: bool) -> str:
    crop = "crop" if crop_borders else "nocrop"
    return f"v{_PIPELINE_VERSION}:{method}:{hash_size}:{crop}"


def _hash_one(job: tuple[Any, ...]) -> tuple[Any, ...]:
    """Worker: (hex, width, height, sharpness, error, thumbnail bytes, own bars) for one file.

    ``job`` is ``(path, method, hash_size, crop_borders, want_sharpness[,
    want_thumbnail[, crop_box]])``; the thumbnail is made from the same
    decode as the hash; ``crop_box`` (a tuple) replaces the file's own bars,
    which are then not returned (``None``).
    """
    path, method, hash_size, crop_borders, want_sharpness = job[:5]
    want_thumbnail = bool(job[5]) if len(job) > 5 else False
    crop_box = BorderBox(*job[6]) if len(job) > 6 and job[6] is not None else None
    try:
        image, width, height, own = open_for_hash_and_box(
            path,
            thumbnail_side=thumbnail_side(hash_size),
            color=method == "colorhash",
            crop_borders=crop_borders,
            crop_box=crop_box,
        )
        packed, thumb = _hash_normalised(image, method, hash_size, thumbnail=want_thumbnail)
        sharp = file_sharpness(path) if want_sharpness else None
        thumb_bytes = thumb.tobytes() if thumb is not None else None
        own_tuple = tuple(own) if own is not None else None
        return packed.to_hex(), width, height, sharp, None, thumb_bytes, own_tuple
    except Image.DecompressionBombError as exc:
        return None, 0, 0, None, f"image too large: {exc}", None, None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "cannot identify image file" in reason:
            reason = "not a readable image"
        return None, 0, 0, None, " ".join(reason.split()), None, None


def hash_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    method: str = "phash",
    hash_size: int = 8,
    crop_borders: bool = True,
    with_sharpness: bool = False,
    use_cache: bool = True,
    write_cache: bool = True,
    read_only_folders: Iterable[str | os.PathLike[str]] = (),
    parallel: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    map_jobs: Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]] | None = None,
    with_thumbnails: bool = False,
    crop_groups: Sequence[int] | None = None,
    on_record: Callable[[int, FileHash], None] | None = None,
) -> HashFilesResult:
    """Hash image files, reusing each folder's hash cache.

    The cache (:data:`CACHE_NAME` in each file's folder) is keyed on the file
    name, its size and ``st_mtime_ns``, and the hash settings; a file whose
    entry matches is not opened again. The cache is rewritten atomically;
    a folder where it cannot be written, or where a file of that name is not
    one of our caches, is still hashed (``cache_errors``; the file is kept).

    Parameters
    ----------
    paths : iterable of path
        Image files (symlinks are followed: this function only reads).
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes.
    crop_borders : bool, optional
        Crop uniform borders before hashing.
    with_sharpness : bool, optional
        Also measure :func:`sharpness` (one more decode per uncached file).
    use_cache : bool, optional
        Read the caches.
    write_cache : bool, optional
        Update the caches (``False`` for a dry run: nothing is written).
    read_only_folders : iterable of path, optional
        Folders whose hash and thumbnail caches are read but never written
        (e.g. reference folders, which must stay untouched).
    parallel : bool or None, optional
        Hash in a process pool; ``None`` decides from the number of files
        (at least 64 to hash) and CPUs.
    progress : callable(done, total), optional
        Called as files are done (cache hits count as done at once).
    map_jobs : callable(func, jobs) -> iterable, optional
        Runs the hashing of the uncached files elsewhere (e.g.
        :mod:`~napari_video_extract.core.distributed`): must return
        ``func(job)`` for every job, in order. ``func`` and the jobs are
        picklable; a job's first item is the file path as given. Caches are
        still read and written here. Overrides ``parallel``.
    with_thumbnails : bool, optional
        Also make each file's verification thumbnail (``FileHash.thumbnail``)
        in the same decode as its hash, cached in the folder's
        :data:`~napari_video_extract.core.thumbcache.THUMB_CACHE_NAME`.
    crop_groups : sequence of int, optional
        The video of each path (e.g. one id per ``frames.csv`` folder):
        the images of one video (id >= 0) are cropped with one box, the
        bars all of them have
        (:func:`~napari_video_extract.core.crop_consensus.consensus_boxes`);
        those whose own bars differ are decoded again (``recropped``). -1,
        or no ``crop_groups``: each image its own crop.
    on_record : callable(index, FileHash), optional
        Called here as each path's record is made, before the call returns
        (e.g. to start work on the first files while the others are
        hashed): cache hits and files that cannot be read first, then the
        hashed files in order. A file decoded again with its video's box
        gets a second call; the returned records are the final ones.

    Returns
    -------
    HashFilesResult
        Records in input order, plus cache hit and failure counters.

    Raises
    ------
    ValueError
        Unknown method or invalid hash size.
    """
    check_method(method, hash_size)
    paths = [Path(p) for p in paths]
    if crop_groups is not None and len(crop_groups) != len(paths):
        raise ValueError(f"{len(crop_groups)} crop groups for {len(paths)} paths")
    n_bits = hash_bits(method, hash_size)
    key = _settings_key(method, hash_size, crop_borders)
    result = HashFilesResult(n_bits=n_bits)
    records: list[FileHash | None] = [None] * len(paths)
    caches: dict[Path, dict[str, Any]] = {}
    thumb_caches: dict[Path, ThumbCache] = {}
    todo: list[int] = []
    stats: list[os.stat_result | None] = []

    for i, path in enumerate(paths):
        folder = path.parent
        if folder not in caches:
            caches[folder] = hash_cache.read_cache(folder) if use_cache else {}
        try:
            st = path.stat()
        except OSError as exc:
            stats.append(None)
            records[i] = FileHash(path, None, error=exc.strerror or str(exc))
            result.failed += 1
            if on_record is not None:
                on_record(i, records[i])
            continue
        stats.append(st)
        entry = caches[folder].get(path.name)
        boxes = hash_cache.cached_boxes(entry, key) if crop_borders else (None, None)
        thumb = None
        if with_thumbnails:
            if folder not in thumb_caches:
                thumb_caches[folder] = ThumbCache.read(folder) if use_cache else ThumbCache(folder)
            thumb_key = hash_cache.thumb_key(key, boxes[1])
            thumb = thumb_caches[folder].get(path.name, st.st_size, st.st_mtime_ns, thumb_key)
        if (
            isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and key in entry.get("hashes", {})
            and (not crop_borders or boxes[1] is not None)
            and (not with_sharpness or entry.get("sharpness") is not None)
            and (not with_thumbnails or thumb is not None)
        ):
            records[i] = FileHash(
                path,
                PackedHash.from_hex(entry["hashes"][key], n_bits),
                width=int(entry.get("width", 0)),
                height=int(entry.get("height", 0)),
                size_bytes=st.st_size,
                sharpness=entry.get("sharpness"),
                from_cache=True,
                thumbnail=thumb,
                border_box=boxes[0],
                crop_box=boxes[1],
            )
            result.cache_hits += 1
            if on_record is not None:
                on_record(i, records[i])
        else:
            todo.append(i)

    total = len(paths)
    done = total - len(todo)
    if progress is not None:
        progress(done, total)

    def run(jobs: list[tuple[Any, ...]], indices: list[int], done: int, total: int) -> int:
        n_cpu = os.cpu_count() or 1
        use_pool = parallel if parallel is not None else len(jobs) >= 64 and n_cpu > 1
        args = (indices, paths, stats, records, result, progress, done, total, on_record)
        if map_jobs is not None:
            return _collect(map_jobs(_hash_one, jobs) if jobs else iter(()), *args)
        if use_pool and jobs:
            with hash_pool.executor(min(n_cpu, 8)) as executor:
                chunk = hash_pool.chunk_size(len(jobs), n_cpu)
                return _collect(executor.map(_hash_one, jobs, chunksize=chunk), *args)
        return _collect((_hash_one(job) for job in jobs), *args)

    jobs = [
        (str(paths[i]), method, hash_size, crop_borders, with_sharpness, with_thumbnails)
        for i in todo
    ]
    done = run(jobs, todo, done, total)
    if crop_borders:
        groups = [-1] * len(paths) if crop_groups is None else [int(g) for g in crop_groups]
        shared = consensus_boxes([r.border_box if r else None for r in records], groups)
        again = [
            i
            for i, (record, box) in enumerate(zip(records, shared, strict=True))
            if record is not None
            and record.hash is not None
            and box is not None
            and (record.crop_box is None or box[:6] != record.crop_box[:6])
        ]
        # Sharpness is of the whole picture: kept from the first decode.
        jobs = [
            (str(paths[i]), method, hash_size, True, False, with_thumbnails, tuple(shared[i]))
            for i in again
        ]
        before = [records[i] for i in again]
        done = run(jobs, again, done, total + len(again))
        for i, old in zip(again, before, strict=True):
            new = records[i]
            if new.hash is None:  # changed or gone between the two decodes: the first stands
                result.failed -= 1
                records[i] = old
                continue
            if old.from_cache:  # opened after all
                result.cache_hits -= 1
            else:
                result.hashed -= 1  # counted once
            new.sharpness = old.sharpness
            if new.border_box is None:  # else a file of another size now: its own crop
                result.recropped += 1
                new.border_box, new.crop_box = old.border_box, shared[i]

    result.files = [r for r in records if r is not None]
    if write_cache:
        read_only = {Path(os.path.abspath(f)) for f in read_only_folders}
        hash_cache.update_caches(caches, result.files, stats, key, result, read_only=read_only)
        if with_thumbnails:
            hash_cache.update_thumb_caches(
                thumb_caches, result.files, stats, key, result, read_only
            )
    return result


def _collect(outputs, todo, paths, stats, records, result, progress, done, total, on_record):
    for i, output in zip(todo, outputs, strict=True):
        hex_, width, height, sharp, error = output[:5]
        thumb_bytes = output[5] if len(output) > 5 else None
        own = BorderBox(*output[6]) if len(output) > 6 and output[6] is not None else None
        st = stats[i]
        size = st.st_size if st is not None else 0
        if error is not None:
            records[i] = FileHash(paths[i], None, size_bytes=size, error=error)
            result.failed += 1
        else:
            packed = PackedHash.from_hex(hex_, result.n_bits)
            thumb = None
            if thumb_bytes is not None:
                thumb = np.frombuffer(thumb_bytes, dtype=np.uint8).reshape(THUMB_SHAPE)
            records[i] = FileHash(
                paths[i],
                packed,
                width,
                height,
                size,
                sharpness=sharp,
                thumbnail=thumb,
                border_box=own,
                crop_box=own,
            )
            result.hashed += 1
        if on_record is not None:
            on_record(i, records[i])
        done += 1
        if progress is not None:
            progress(done, total)
    return done

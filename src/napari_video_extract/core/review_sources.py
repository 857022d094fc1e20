"""Where a :class:`~napari_video_extract.core.review.Review` comes from.

* :func:`folder_review`: the folder's images hashed by
  :func:`~napari_video_extract.core.hashing.hash_files` (same normalisation,
  hash cache and process pool as ``dedup``) and clustered by
  :func:`~napari_video_extract.core.dedup.dedup_folders` in dry-run mode, so
  the clusters are the ones ``dedup`` writes to ``dedup.csv``, bit for bit;
* :func:`files_review`: given image files (a stills layer's), in their order;
* :func:`dedup_csv_review`: a folder a CLI ``dedup`` run already processed,
  from its ``dedup.csv`` (moved duplicates included, at their current place).

Frames of an in-memory or lazy stack (a napari video layer) are the other
source: :func:`~napari_video_extract.core.stack_review.frames_review`.

Each is also a class method of :class:`Review` (``Review.from_folder``...).
"""

from __future__ import annotations

import csv
import io
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract.core.dedup import CSV_NAME, ClusterResult, dedup_folders
from napari_video_extract.core.errors import InputError
from napari_video_extract.core.hashing import (
    hamming_bits,
    hash_files,
    hashes_from_hex,
)
from napari_video_extract.core.manifest import read_manifest
from napari_video_extract.core.review import Cancelled, Review, ReviewSettings

__all__ = ["cancellable_map", "dedup_csv_review", "files_review", "folder_review"]


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled


def cancellable_map(
    cancel: threading.Event | None,
) -> Callable[[Callable[[Any], Any], list[Any]], Iterator[Any]]:
    """A ``map_jobs`` for :func:`hash_files` that a ``cancel`` event stops.

    Same process pool and chunking as :func:`hash_files` uses by itself; on
    cancel, pending chunks are dropped and :class:`Cancelled` is raised from
    the results iterator (so ``hash_files`` writes no cache).
    """
    from napari_video_extract.core import hash_pool

    def run(func: Callable[[Any], Any], jobs: list[Any]) -> Iterator[Any]:
        n_cpu = os.cpu_count() or 1
        if len(jobs) < 64 or n_cpu == 1:
            for job in jobs:
                _check_cancel(cancel)
                yield func(job)
            return
        executor = hash_pool.executor(min(n_cpu, 8))
        try:
            chunk = hash_pool.chunk_size(len(jobs), n_cpu)
            for output in executor.map(func, jobs, chunksize=chunk):
                _check_cancel(cancel)
                yield output
        finally:
            executor.shutdown(wait=cancel is None or not cancel.is_set(), cancel_futures=True)

    return run


def _hash_for_review(
    paths: Sequence[Path],
    settings: ReviewSettings,
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    crop_groups: Sequence[int] | None,
) -> Any:
    """``hash_files`` with the review's settings, cancellable: what the CLI would hash.

    ``crop_groups`` as dedup gives them: the video of each timed still.
    """
    return hash_files(
        paths,
        method=settings.method,
        hash_size=settings.hash_size,
        crop_borders=settings.crop_borders,
        with_sharpness=settings.keep == "sharpest",
        progress=progress,
        map_jobs=cancellable_map(cancel),
        with_thumbnails=settings.verify,
        crop_groups=crop_groups,
    )


def folder_review(
    folder: str | os.PathLike[str],
    settings: ReviewSettings | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    cluster_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Review:
    """Hash and cluster a folder of images exactly as ``dedup`` does.

    Parameters
    ----------
    folder : path
        A folder of images (not recursed into).
    settings : ReviewSettings, optional
        Default: the CLI's defaults.
    progress : callable(done, total), optional
        Hashing progress.
    cluster_progress : callable(done, total), optional
        Progress of the verified clustering that follows (items placed).
    cancel : threading.Event, optional
        Stops hashing and the verified clustering (raises :class:`Cancelled`).

    Returns
    -------
    Review

    Raises
    ------
    InputError
        No such folder, or no readable image in it.
    Cancelled
        ``cancel`` was set.
    """
    settings = settings or ReviewSettings()
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    from napari_video_extract.core.dedup import ordered_images

    try:
        paths, times = ordered_images(folder)
    except OSError as exc:
        raise InputError(folder, f"cannot list folder: {exc.strerror or exc}") from None
    # The expensive step, cancellable; it also fills the hash cache so the
    # dry-run below reads every hash from it.
    videos = [-1 if t is None else 0 for t in times]
    hashed = _hash_for_review(paths, settings, progress, cancel, videos)
    _check_cancel(cancel)
    # The dry run gives dedup's items (order, times, unreadable files) with a
    # hash-only clustering (milliseconds); the verified clustering, the
    # second expensive step, runs in Review below with the same inputs as
    # dedup's (hashes, thumbnails, sequence, quality), where it reports
    # progress and can be cancelled.
    report = dedup_folders(
        [folder],
        method=settings.method,
        hash_size=settings.hash_size,
        threshold=settings.threshold,
        mode=settings.mode,
        keep=settings.keep,
        crop_borders=settings.crop_borders,
        dry_run=True,
        verify=False,
    )
    by_path = {rec.path: rec for rec in hashed.files}
    items = [it for it in report.items if it.cluster >= 0]
    if not items:
        raise InputError(folder, "no readable images in this folder")
    words = hashes_from_hex([it.hash for it in items], settings.n_bits)
    quality = _file_quality(settings.keep, [by_path.get(it.path) for it in items])
    index = {it.path: k for k, it in enumerate(items)}
    result = None
    thumbnails = None
    if settings.verify:
        thumbnails = np.stack([by_path[it.path].thumbnail for it in items])
    else:
        result = ClusterResult(
            cluster=np.array([it.cluster for it in items], dtype=np.int64),
            kept=np.array([it.kept for it in items], dtype=bool),
            distance=np.array([it.distance for it in items], dtype=np.int64),
            kept_index=np.array([index[it.kept_path] for it in items], dtype=np.int64),
            n_clusters=len({it.cluster for it in items}),
            threshold=int(settings.threshold),
        )
    frames = {Path(rec.file).name: rec for rec in read_manifest(folder)}
    return Review(
        words,
        settings,
        thumbnails=thumbnails,
        # As dedup: a still with a frames.csv time neighbours the previous one.
        sequence=np.array([-1 if it.time is None else 0 for it in items], dtype=np.int64),
        paths=[it.path for it in items],
        folder=folder,
        frame=np.array([_rec(frames, it.path).frame for it in items], dtype=np.int64),
        time=np.array([np.nan if it.time is None else it.time for it in items]),
        video=[_rec(frames, it.path).video for it in items],
        quality=quality,
        result=result,
        unreadable=list(report.unreadable),
        cancel=cancel,
        progress=cluster_progress,
    )


def files_review(
    paths: Sequence[str | os.PathLike[str]],
    settings: ReviewSettings | None = None,
    *,
    frame: Sequence[int] | None = None,
    time: Sequence[float] | None = None,
    video: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cluster_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Review:
    """Image files in the order given (a stills layer's files), hashed like ``dedup``.

    Same :func:`hash_files` path as the CLI (normalisation, cache, pool);
    unreadable files are listed in ``unreadable`` and left out.
    ``progress`` reports hashing, ``cluster_progress`` the verified
    clustering; ``cancel`` stops either.

    Raises
    ------
    InputError
        No readable file.
    Cancelled
        ``cancel`` was set.
    """
    settings = settings or ReviewSettings()
    paths = [Path(p) for p in paths]
    groups = None
    if time is not None:
        groups = _sequence(video, len(paths), np.isfinite(np.asarray(time, dtype=float)))
    hashed = _hash_for_review(paths, settings, progress, cancel, groups)
    _check_cancel(cancel)
    good = [k for k, rec in enumerate(hashed.files) if rec.hash is not None]
    if not good:
        raise InputError(paths[0] if paths else Path("."), "no readable image")

    def pick(values: Sequence[Any] | None) -> list[Any] | None:
        return None if values is None else [values[k] for k in good]

    times = None if time is None else np.asarray(pick(time), dtype=float)
    videos = pick(video)
    return Review(
        hashed.hash_array(),
        settings,
        thumbnails=hashed.thumbnail_array() if settings.verify else None,
        sequence=None if times is None else _sequence(videos, len(good), np.isfinite(times)),
        paths=[paths[k] for k in good],
        frame=None if frame is None else np.asarray(pick(frame), dtype=np.int64),
        time=times,
        video=videos,
        quality=_file_quality(settings.keep, [hashed.files[k] for k in good]),
        unreadable=[(r.path, r.error or "unreadable") for r in hashed.files if r.hash is None],
        cancel=cancel,
        progress=cluster_progress,
    )


def dedup_csv_review(
    folder: str | os.PathLike[str], settings: ReviewSettings | None = None
) -> Review:
    """The clusters a CLI ``dedup`` run wrote to ``folder/dedup.csv``.

    Moved duplicates are items at their current place (``moved_to``).
    Re-clustering later uses ``settings`` (its ``keep`` policy falls back
    to ``"first"``: the csv has no quality figures).

    Raises
    ------
    InputError
        No readable ``dedup.csv`` in ``folder``.
    """
    folder = Path(folder)
    path = folder / CSV_NAME
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    good = []
    for row in rows:
        try:
            if int(row["cluster"]) >= 0 and row["hash"]:
                good.append(row)
        except (KeyError, TypeError, ValueError):
            continue
    if not good:
        raise InputError(path, "lists no readable image")
    n_bits = 4 * max(len(r["hash"]) for r in good)
    if settings is None or settings.n_bits != n_bits:
        settings = _settings_for_bits(n_bits, settings)
    settings = replace(settings, keep="first")
    words = hashes_from_hex([r["hash"] for r in good], settings.n_bits)
    paths = [folder / (r["moved_to"] or r["file"]) for r in good]
    name_index = {r["file"]: k for k, r in enumerate(good)}
    cluster = np.array([int(r["cluster"]) for r in good], dtype=np.int64)
    kept = np.array([r["kept"] == "1" for r in good], dtype=bool)
    keeper_of: dict[int, int] = {}
    for k in np.flatnonzero(kept):
        keeper_of.setdefault(int(cluster[k]), int(k))
    kept_index = np.array(
        [keeper_of.get(int(c), name_index.get(r["kept_file"], k)) for k, (c, r) in
         enumerate(zip(cluster, good, strict=True))],
        dtype=np.int64,
    )  # fmt: skip
    result = ClusterResult(
        cluster=cluster,
        kept=kept,
        distance=hamming_bits(words, words[kept_index]).astype(np.int64),
        kept_index=kept_index,
        n_clusters=len(set(cluster.tolist())),
        threshold=int(settings.threshold),
    )
    frames = {Path(rec.file).name: rec for rec in read_manifest(folder)}
    times = []
    for r in good:
        try:
            times.append(float(r.get("time") or "nan"))
        except ValueError:
            times.append(math.nan)
    # The folder's one video: the crop box shared by its stills, as in dedup.
    sequence = np.where(np.isfinite(times), 0, -1).astype(np.int64)
    return Review(
        words,
        settings,
        # Made when a re-clustering first needs them: the csv's own clusters
        # need none.
        thumbnails=(lambda: _file_thumbnails(paths, settings, sequence))
        if settings.verify
        else None,
        sequence=sequence,
        paths=paths,
        original_paths=[folder / r["file"] for r in good],
        folder=folder,
        frame=np.array([_rec(frames, Path(r["file"])).frame for r in good], dtype=np.int64),
        time=np.array(times),
        video=[_rec(frames, Path(r["file"])).video for r in good],
        result=result,
    )


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _NoRecord:
    frame: int = -1
    video: str = ""


def _rec(frames: dict[str, Any], path: Path) -> Any:
    return frames.get(path.name, _NoRecord())


def _sequence(videos: Sequence[str] | None, n: int, timed: np.ndarray) -> np.ndarray:
    """One neighbour id per video for timed items, -1 for the others."""
    names = [""] * n if videos is None else [str(v) for v in videos]
    ids: dict[str, int] = {}
    seq = np.array([ids.setdefault(v, len(ids)) for v in names], dtype=np.int64)
    seq[~np.asarray(timed, dtype=bool)] = -1
    return seq


def _file_thumbnails(
    paths: Sequence[Path], settings: ReviewSettings, crop_groups: np.ndarray
) -> np.ndarray | None:
    """Thumbnails of files, from hash_files' cache where it has them.

    None when a file cannot be read any more: the review then clusters by
    hash only rather than guess.
    """
    hashed = hash_files(
        paths,
        method=settings.method,
        hash_size=settings.hash_size,
        crop_borders=settings.crop_borders,
        with_thumbnails=True,
        write_cache=False,  # a duplicates folder may not be ours to write in
        crop_groups=crop_groups,
    )
    if any(rec.hash is None for rec in hashed.files):
        return None
    return hashed.thumbnail_array()


def _file_quality(keep: str, records: Iterable[Any]) -> np.ndarray | None:
    records = list(records)
    if keep == "sharpest":
        return np.array([(r.sharpness or 0.0) if r else 0.0 for r in records])
    if keep == "largest":
        return np.array(
            [(r.width * r.height, r.size_bytes) if r else (0, 0) for r in records],
            dtype=np.float64,
        ).reshape(len(records), 2)
    return None


def _settings_for_bits(n_bits: int, base: ReviewSettings | None) -> ReviewSettings:
    """Settings whose hash has ``n_bits`` bits (a dedup.csv does not name its method)."""
    method = base.method if base is not None else "phash"
    size = max(2, math.isqrt(n_bits))
    with_bits = ReviewSettings(method=method, hash_size=size) if size * size == n_bits else None
    if with_bits is None:
        with_bits = ReviewSettings(method="phash", hash_size=max(2, math.isqrt(n_bits)))
    threshold = base.threshold if base is not None else None
    if threshold is not None and threshold <= with_bits.n_bits:
        with_bits = replace(with_bits, threshold=threshold)
    return with_bits

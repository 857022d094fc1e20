"""Near-duplicate detection and separation, deterministic and undoable.

Two layers:

* :func:`cluster_hashes` (from :mod:`~napari_video_extract.core.clustering`)
  works on packed hashes in memory; the two-stage matching that verifies hash
  candidates on thumbnails is
  :func:`~napari_video_extract.core.matching.cluster_verified` (the napari
  widget uses it with
  :func:`~napari_video_extract.core.hashing.hash_frames_and_thumbnails`);
* :func:`dedup_folders` scans folders, hashes (with a cache), clusters, moves
  duplicates aside (:mod:`~napari_video_extract.core.moves`) and writes
  ``dedup.csv`` (:mod:`~napari_video_extract.core.dedup_report`);
  :func:`~napari_video_extract.core.undo.undo_folder` puts every moved file
  back.

Order never comes from the file system: within a folder, images are ordered
by the ``time`` column of ``frames.csv`` (columns ``file,video,time,frame``)
when there is one, else by natural name order (``img2`` before ``img10``);
folders are taken in the order given, reference folders first.

Safety rules of :func:`dedup_folders`:

* nothing is deleted and nothing is overwritten: a name taken at the
  destination gets a ``-1``, ``-2``... suffix (the no-overwrite move is a hard
  link then an unlink, or an exclusive-create copy across file systems);
* every move is appended to ``.nve-moves.jsonl`` in the source folder and
  fsynced **before** the file moves, with the file's size and SHA-256, so a run
  killed half-way can be undone;
* every folder that will be written is checked first: a read-only folder
  raises :class:`~napari_video_extract.core.errors.OutputError` before
  anything moves;
* symbolic links in an input folder are skipped (counted, never hashed, never
  moved), so a link's target can never be pulled out of another folder and a
  relative link can never be left dangling.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract.core.clustering import ClusterResult, cluster_hashes
from napari_video_extract.core.dedup_report import (
    CSV_COLUMNS,
    CSV_NAME,
    DedupItem,
    DedupReport,
    csv_rows,
    write_csv_atomic,
)
from napari_video_extract.core.dedup_settings import (
    KEEP_POLICIES,
    MODES,
    check_changes,
    default_min_similarity,
)
from napari_video_extract.core.errors import InputError, OutputError, os_error_reason
from napari_video_extract.core.hashing import (
    METHODS,
    default_threshold,
    hash_bits,
    hash_files,
)
from napari_video_extract.core.image_folder import natural_key, ordered_images
from napari_video_extract.core.image_folder import scan_folder as _scan
from napari_video_extract.core.moves import (
    JOURNAL_NAME,
    Journal,
    check_writable,
    ensure_dir,
    finish_interrupted_moves,
    free_name,
    transfer,
)
from napari_video_extract.core.ownership import NOT_OURS, csv_is_ours
from napari_video_extract.core.undo import UndoReport, undo_folder

__all__ = [
    "CSV_NAME",
    "DUPLICATES_DIRNAME",
    "JOURNAL_NAME",
    "KEEP_POLICIES",
    "MODES",
    "ClusterResult",
    "DedupItem",
    "DedupReport",
    "UndoReport",
    "cluster_hashes",
    "dedup_folders",
    "natural_key",
    "ordered_images",
    "undo_folder",
]

DUPLICATES_DIRNAME = "duplicates"


# ---------------------------------------------------------------- dedup_folders


def dedup_folders(
    folders: Sequence[str | os.PathLike[str]],
    *,
    method: str = "phash",
    hash_size: int = 8,
    threshold: int | None = None,
    mode: str = "global",
    keep: str = "first",
    reference: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    duplicates_dir: str | os.PathLike[str] | None = None,
    kept_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    crop_borders: bool = True,
    progress: Callable[[int, int], None] | None = None,
    map_jobs: Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]] | None = None,
    verify: bool = True,
    min_similarity: float | None = None,
    changes: str = "global",
) -> DedupReport:
    """Find near-duplicate images in folders and move the duplicates aside.

    All images of all folders are clustered together (see
    :func:`cluster_hashes`); in each cluster one image is kept in place and the
    others are moved to ``duplicates_dir``. Each input folder gets a
    ``dedup.csv`` (columns ``file,hash,cluster,kept,distance,moved_to,
    copied_to,kept_file,time,status,similarity``) and a move journal for
    :func:`undo_folder`. With ``verify`` (the default) the hash only proposes
    candidates and an aligned comparison of thumbnails decides
    (:func:`~napari_video_extract.core.matching.cluster_verified`); stills
    with ``frames.csv`` times are also compared with their neighbour in time.

    Parameters
    ----------
    folders : sequence of path
        Input folders, taken in this order (their files in capture order).
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes.
    threshold : int, optional
        Largest distance in bits for duplicates (with ``verify``: for
        candidates); default
        :func:`~napari_video_extract.core.hashing.default_threshold`
        (``verify=verify``).
    mode : {"global", "sequential"}, optional
        Clustering mode.
    keep : {"first", "sharpest", "largest"}, optional
        Which image of a cluster stays: first in order, highest variance of
        the Laplacian, or most pixels then most bytes.
    reference : path or sequence of path, optional
        Folders of images that duplicates are looked for against but that are
        never moved (nor get a ``dedup.csv``).
    duplicates_dir : path, optional
        Where duplicates go; default ``<input folder>/duplicates``.
    kept_dir : path, optional
        Also copy the kept images there.
    dry_run : bool, optional
        Plan only: the report says what would move; no file, folder, csv or
        cache is written.
    crop_borders : bool, optional
        Crop uniform borders before hashing.
    progress : callable(done, total), optional
        Hashing progress.
    map_jobs : callable(func, jobs) -> iterable, optional
        Where to hash the uncached images (see
        :func:`~napari_video_extract.core.hashing.hash_files`); default here,
        in local processes. Clustering and moves always run here.
    verify : bool, optional
        Verify hash candidates by aligned comparison (``False``: the hash
        alone decides, as before).
    min_similarity : float, optional
        Smallest verified similarity of a duplicate; default
        :func:`~napari_video_extract.core.dedup_settings.default_min_similarity`.
    changes : {"global", "local"}, optional
        ``local``: stricter, every block of the aligned pair must agree, so
        stills where something moved in a static scene are kept.

    Returns
    -------
    DedupReport

    Raises
    ------
    ValueError
        Bad settings (method, hash size, threshold, mode, keep), no folder, or
        a folder given twice.
    InputError
        A folder does not exist or cannot be listed.
    OutputError
        A folder that must be written is read-only or cannot be created;
        raised before anything is moved.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"unknown hash method {method!r}; choose one of {', '.join(METHODS)}")
    n_bits = hash_bits(method, hash_size)
    if threshold is None:
        threshold = default_threshold(method, hash_size, verify=verify)
    check_changes(changes)
    if verify and min_similarity is None:
        min_similarity = default_min_similarity(changes)
    if verify and not -1 <= min_similarity <= 1:
        raise ValueError(f"min_similarity must be from -1 to 1, got {min_similarity!r}")
    if int(threshold) != threshold or not 0 <= threshold <= n_bits:
        raise ValueError(f"threshold must be 0 to {n_bits} bits for this hash, got {threshold!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if keep not in KEEP_POLICIES:
        raise ValueError(f"unknown keep policy {keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
    inputs = [Path(f) for f in folders]
    if not inputs:
        raise ValueError("no folder given")
    if reference is None:
        refs: list[Path] = []
    elif isinstance(reference, str | os.PathLike):
        refs = [Path(reference)]
    else:
        refs = [Path(r) for r in reference]
    seen: set[Path] = set()
    for folder in refs + inputs:
        if not folder.is_dir():
            raise InputError(folder, "no such folder")
        resolved = folder.resolve()
        if resolved in seen:
            raise ValueError(f"{folder}: folder given twice (as input or reference)")
        seen.add(resolved)
    dup_dir = Path(duplicates_dir) if duplicates_dir is not None else None
    keep_dir = Path(kept_dir) if kept_dir is not None else None
    for special in (dup_dir, keep_dir):
        if special is not None and special.resolve() in seen:
            raise ValueError(f"{special}: cannot be one of the input or reference folders")

    left_alone: list[str] = []
    if not dry_run:
        for folder in inputs:
            # Before anything is written (cache, moves): the csv would be replaced.
            if not csv_is_ours(folder / CSV_NAME, CSV_COLUMNS):
                raise OutputError(folder / CSV_NAME, f"{NOT_OURS} (rename it; nothing was moved)")
        for folder in inputs:
            try:
                left_alone += finish_interrupted_moves(folder)
            except OSError as exc:
                raise OutputError(
                    folder, f"cannot finish an interrupted move: {os_error_reason(exc)}"
                ) from exc

    report = DedupReport(
        threshold=int(threshold),
        n_bits=n_bits,
        dry_run=dry_run,
        min_similarity=min_similarity if verify else None,
        changes=changes,
    )
    report.notes += left_alone
    items: list[DedupItem] = []
    for folder, is_ref in [(f, True) for f in refs] + [(f, False) for f in inputs]:
        try:
            scan = _scan(folder)
        except OSError as exc:
            raise InputError(folder, f"cannot list folder: {exc.strerror or exc}") from exc
        report.skipped_non_images += scan.non_images
        report.skipped_symlinks += scan.symlinks
        for path, t in zip(scan.images, scan.times, strict=True):
            items.append(DedupItem(path=path, folder=folder, reference=is_ref, time=t))

    # Stills with a frames.csv time come from the folder's one video: they
    # share one crop box, and each neighbours the previous one in time.
    folder_ids = {folder: k for k, folder in enumerate(refs + inputs)}
    videos = [folder_ids[it.folder] if it.time is not None else -1 for it in items]
    alongside = None  # the verified clustering, started while the files are hashed
    if verify:
        from napari_video_extract.core.verify_while_hashing import VerifyWhileHashing

        alongside = VerifyWhileHashing(
            [it.reference for it in items], videos, n_words=max(1, -(-n_bits // 64)),
            crop_borders=crop_borders, threshold=int(threshold), min_similarity=min_similarity,
            changes=changes, mode=mode, keep=keep,
        )  # fmt: skip
    try:
        hashed = hash_files(
            [item.path for item in items],
            method=method,
            hash_size=hash_size,
            crop_borders=crop_borders,
            with_sharpness=keep == "sharpest",
            write_cache=not dry_run,
            read_only_folders=refs,  # reference folders stay untouched
            progress=progress,
            map_jobs=map_jobs,
            with_thumbnails=verify,
            crop_groups=videos,
            on_record=alongside.on_record if alongside is not None else None,
        )
        report.cache_hits, report.hashed = hashed.cache_hits, hashed.hashed
        readable: list[int] = []
        for i, (item, record) in enumerate(zip(items, hashed.files, strict=True)):
            if record.hash is None:
                item.error = record.error
                if not item.reference:
                    report.unreadable.append((item.path, record.error or "unreadable"))
            else:
                item.hash = record.hash.to_hex()
                readable.append(i)

        words = hashed.hash_array()
        quality = None
        if keep == "sharpest":
            quality = np.array([hashed.files[i].sharpness or 0.0 for i in readable])
        elif keep == "largest":
            quality = np.array(
                [
                    (hashed.files[i].width * hashed.files[i].height, hashed.files[i].size_bytes)
                    for i in readable
                ],
                dtype=np.float64,
            ).reshape(len(readable), 2)
        ref_mask = np.array([items[i].reference for i in readable], dtype=bool)
        if verify:
            result = alongside.result(hashed.files, quality)
            report.verified_while_hashing = alongside.fed_while_hashing
    except BaseException:  # the clustering thread must not outlive the run
        if alongside is not None:
            alongside.cancel()
        raise
    alongside = None  # its buffers are not needed by the fallback below
    if verify and result is None:  # a record changed after it was fed: cluster them all again
        from napari_video_extract.core.matching import cluster_verified

        result = cluster_verified(
            words,
            hashed.thumbnail_array(),
            threshold=int(threshold),
            min_similarity=min_similarity,
            changes=changes,
            mode=mode,
            keep=keep,
            quality=quality,
            reference_mask=ref_mask,
            sequence=np.array([videos[i] for i in readable], dtype=np.int64),
        )
    if verify:
        report.verification = result
        report.verified_paths = [items[i].path for i in readable]
    else:
        result = cluster_hashes(
            words,
            threshold=int(threshold),
            mode=mode,
            quality=quality,
            keep=keep,
            reference_mask=ref_mask,
            n_bits=n_bits,
        )
    for k, i in enumerate(readable):
        item = items[i]
        item.cluster = int(result.cluster[k])
        item.kept = bool(result.kept[k])
        item.distance = int(result.distance[k])
        if verify:
            item.similarity = float(result.similarity[k])
        item.kept_path = items[readable[int(result.kept_index[k])]].path

    inputs_readable = [items[i] for i in readable if not items[i].reference]
    report.n_images = len(inputs_readable)
    report.n_clusters = len({it.cluster for it in inputs_readable})
    report.n_kept = sum(it.kept for it in inputs_readable)
    report.n_duplicates = report.n_images - report.n_kept
    report.items = items

    _plan_and_apply(report, items, inputs, dup_dir, keep_dir, dry_run=dry_run)
    report.elapsed = time.perf_counter() - started
    return report


def _plan_and_apply(report, items, inputs, dup_dir, keep_dir, *, dry_run):
    to_move = [it for it in items if not it.reference and it.cluster >= 0 and not it.kept]
    to_copy = [it for it in items if not it.reference and it.kept] if keep_dir else []

    # Plan destinations first (also what a dry run reports).
    reserved: set[Path] = set()
    for it in to_move:
        target_dir = dup_dir if dup_dir is not None else it.folder / DUPLICATES_DIRNAME
        it.moved_to = free_name(target_dir, it.path.name, reserved)
        reserved.add(it.moved_to)
    for it in to_copy:
        it.copied_to = free_name(keep_dir, it.path.name, reserved)
        reserved.add(it.copied_to)
    if dry_run:
        report.n_moved, report.n_copied = len(to_move), len(to_copy)
        return

    # Check every folder we will write before the first move.
    for folder in inputs:
        check_writable(folder)
    directories = {it.moved_to.parent for it in to_move}
    if to_copy:
        directories.add(keep_dir)
    for directory in sorted(directories):
        ensure_dir(directory)

    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    journals = {folder: Journal(folder, run_id) for folder in inputs}
    try:
        for op, group in (("copy", to_copy), ("move", to_move)):
            for it in group:
                planned = it.copied_to if op == "copy" else it.moved_to
                try:
                    done = transfer(
                        it.path, planned, journals[it.folder], op=op, reserved=reserved
                    )
                except OSError as exc:
                    it.error = f"cannot {op} to {planned}: {exc.strerror or exc}"
                    report.errors.append(f"{it.path}: {it.error}")
                    if op == "copy":
                        it.copied_to = None
                    else:
                        it.moved_to = None
                    continue
                if op == "copy":
                    it.copied_to = done
                    report.n_copied += 1
                else:
                    it.moved_to = done
                    report.n_moved += 1
    finally:
        for journal in journals.values():
            journal.close()

    for folder in inputs:
        rows = csv_rows(items, folder)
        csv_path = folder / CSV_NAME
        try:
            write_csv_atomic(csv_path, rows)
            report.csv_paths.append(csv_path)
        except OSError as exc:
            report.errors.append(f"{csv_path}: cannot write: {exc.strerror or exc}")

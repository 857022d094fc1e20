"""The duplicate review model: clusters, keepers, distances and the user's overrides.

A :class:`Review` holds the hashes of a set of items -- the images of a folder
or the frames of a video -- and the clustering of those hashes by the engine
(:func:`~napari_video_extract.core.dedup.cluster_hashes`). On top of it the
user's decisions: mark an item kept or duplicate, make an item the keeper of
its cluster. Overrides are stored per item, not per cluster, so they survive
re-clustering when the threshold changes (re-clustering only runs on the hashes
already computed: milliseconds for 10,000 items).

Three ways to build one, all through the engine the CLI uses:

* :meth:`Review.from_folder`: the folder's images, hashed by
  :func:`~napari_video_extract.core.hashing.hash_files` (same normalisation,
  hash cache and process pool as ``dedup``) and clustered by
  :func:`~napari_video_extract.core.dedup.dedup_folders` in dry-run mode, so
  the clusters are the ones ``dedup`` writes to ``dedup.csv``, bit for bit;
* :meth:`Review.from_dedup_csv`: a folder a CLI ``dedup`` run already
  processed, from its ``dedup.csv`` (moved duplicates included, at their
  current place);
* :meth:`Review.from_frames`: frames of an in-memory or lazy stack (a napari
  video layer), read and hashed a chunk at a time, never all at once.

Applying the decisions lives in :mod:`~napari_video_extract.core.review_apply`.
No Qt, no napari: the model is tested without a display.
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

from napari_video_extract.core.dedup import (
    CSV_NAME,
    ClusterResult,
    cluster_hashes,
    dedup_folders,
)
from napari_video_extract.core.dedup_settings import (
    KEEP_POLICIES,
    MODES,
    check_method,
    default_threshold,
    hash_bits,
)
from napari_video_extract.core.errors import InputError
from napari_video_extract.core.hashing import (
    hamming_bits,
    hash_files,
    hash_frames,
    hashes_from_hex,
    hashes_to_hex,
    sharpness,
)
from napari_video_extract.core.manifest import read_manifest

__all__ = ["DUPLICATE", "KEEP", "Cancelled", "Review", "ReviewSettings", "format_time"]

#: Override values of :meth:`Review.mark`.
KEEP = "keep"
DUPLICATE = "duplicate"
_OVERRIDE_CODE = {None: 0, KEEP: 1, DUPLICATE: -1}

_FRAME_CHUNK = 16  # frames read and hashed between progress/cancel checks
_NEAREST_BLOCK = 256  # items compared with all others at once for the histogram


class Cancelled(Exception):
    """Raised inside a review step when its ``cancel`` event is set."""


@dataclass(frozen=True)
class ReviewSettings:
    """Hash and clustering settings of a review (the CLI's ``dedup`` options).

    Raises
    ------
    ValueError
        The setting named in the message is invalid (``method``,
        ``hash_size``, ``threshold``, ``mode`` or ``keep``); each face words
        it in its own terms.
    """

    method: str = "phash"
    hash_size: int = 8
    threshold: int | None = None
    mode: str = "global"
    keep: str = "first"
    crop_borders: bool = True

    def __post_init__(self) -> None:
        check_method(self.method, self.hash_size)
        n_bits = hash_bits(self.method, self.hash_size)
        if self.threshold is None:
            object.__setattr__(self, "threshold", default_threshold(self.method, self.hash_size))
        if int(self.threshold) != self.threshold or not 0 <= self.threshold <= n_bits:
            raise ValueError(f"threshold must be 0 to {n_bits} bits for this hash")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.keep not in KEEP_POLICIES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}")

    @property
    def n_bits(self) -> int:
        """Bits per hash."""
        return hash_bits(self.method, self.hash_size)


def format_time(seconds: float) -> str:
    """``mm:ss.mmm`` (``h:mm:ss.mmm`` past an hour); ``""`` for NaN."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m:02d}:{s:02d}.{ms:03d}"


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
    from napari_video_extract.core import hashing

    def run(func: Callable[[Any], Any], jobs: list[Any]) -> Iterator[Any]:
        n_cpu = os.cpu_count() or 1
        if len(jobs) < 64 or n_cpu == 1:
            for job in jobs:
                _check_cancel(cancel)
                yield func(job)
            return
        executor = hashing._executor(min(n_cpu, 8))
        try:
            chunk = max(1, min(32, len(jobs) // (4 * n_cpu)))
            for output in executor.map(func, jobs, chunksize=chunk):
                _check_cancel(cancel)
                yield output
        finally:
            executor.shutdown(wait=cancel is None or not cancel.is_set(), cancel_futures=True)

    return run


class Review:
    """Items, their hashes and clusters, and the user's decisions on them.

    Build one with :meth:`from_folder`, :meth:`from_dedup_csv` or
    :meth:`from_frames`. Items keep their index for the life of the review.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (N, W)
        Packed hashes, in capture order.
    settings : ReviewSettings
        Hash and clustering settings.
    paths : list of Path, optional
        The file of each item (folder reviews), at its current place.
    original_paths : list of Path, optional
        Where each file belongs in the folder (default ``paths``); differs
        for duplicates a ``dedup`` run moved aside.
    folder : Path, optional
        The reviewed folder (folder reviews).
    frame : ndarray of int, optional
        Video frame number of each item (-1 when unknown).
    time : ndarray of float, optional
        Time in seconds of each item (NaN when unknown).
    video : list of str, optional
        The video each item comes from (``""`` when unknown).
    quality : ndarray, optional
        Quality per item for ``keep="sharpest"``/``"largest"``.
    result : ClusterResult, optional
        A clustering to start from (else computed from the hashes).
    unreadable : list of (Path, str), optional
        Files that could not be hashed (not items).
    """

    def __init__(
        self,
        hashes: np.ndarray,
        settings: ReviewSettings,
        *,
        paths: Sequence[Path] | None = None,
        original_paths: Sequence[Path] | None = None,
        folder: Path | None = None,
        frame: np.ndarray | None = None,
        time: np.ndarray | None = None,
        video: Sequence[str] | None = None,
        quality: np.ndarray | None = None,
        result: ClusterResult | None = None,
        unreadable: Sequence[tuple[Path, str]] = (),
    ) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64).reshape(len(hashes), -1)
        n = len(self.hashes)
        self.settings = settings
        self.paths = list(paths) if paths is not None else None
        self.original_paths = (
            list(original_paths) if original_paths is not None else self.paths and list(self.paths)
        )
        self.folder = folder
        self.frame = np.full(n, -1, np.int64) if frame is None else np.asarray(frame, np.int64)
        self.time = np.full(n, np.nan) if time is None else np.asarray(time, dtype=float)
        self.video = [""] * n if video is None else [str(v) for v in video]
        self.quality = quality
        self.unreadable = list(unreadable)
        self.override = np.zeros(n, dtype=np.int8)  # 1 keep, -1 duplicate, 0 engine
        self.keeper_pick = np.zeros(n, dtype=bool)
        self._nearest: np.ndarray | None = None
        # Clusterings by (threshold, mode): moving the threshold back and forth
        # (or after precompute()) is a lookup, not a new clustering.
        self._clusterings: dict[tuple[int, str], ClusterResult] = {}
        if result is not None:
            self._clusterings[(int(settings.threshold), settings.mode)] = result
        self._result = result if result is not None else self._cluster(settings)
        self._derive()

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike[str],
        settings: ReviewSettings | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
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
        cancel : threading.Event, optional
            Stops hashing (raises :class:`Cancelled`).

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
            paths, _ = ordered_images(folder)
        except OSError as exc:
            raise InputError(folder, f"cannot list folder: {exc.strerror or exc}") from None
        # The expensive step, cancellable; it also fills the hash cache so the
        # dry-run clustering below reads every hash from it.
        hashed = hash_files(
            paths,
            method=settings.method,
            hash_size=settings.hash_size,
            crop_borders=settings.crop_borders,
            with_sharpness=settings.keep == "sharpest",
            progress=progress,
            map_jobs=cancellable_map(cancel),
        )
        _check_cancel(cancel)
        report = dedup_folders(
            [folder],
            method=settings.method,
            hash_size=settings.hash_size,
            threshold=settings.threshold,
            mode=settings.mode,
            keep=settings.keep,
            crop_borders=settings.crop_borders,
            dry_run=True,
        )
        by_path = {rec.path: rec for rec in hashed.files}
        items = [it for it in report.items if it.cluster >= 0]
        if not items:
            raise InputError(folder, "no readable images in this folder")
        words = hashes_from_hex([it.hash for it in items], settings.n_bits)
        quality = _file_quality(settings.keep, [by_path.get(it.path) for it in items])
        index = {it.path: k for k, it in enumerate(items)}
        result = ClusterResult(
            cluster=np.array([it.cluster for it in items], dtype=np.int64),
            kept=np.array([it.kept for it in items], dtype=bool),
            distance=np.array([it.distance for it in items], dtype=np.int64),
            kept_index=np.array([index[it.kept_path] for it in items], dtype=np.int64),
            n_clusters=len({it.cluster for it in items}),
            threshold=int(settings.threshold),
        )
        frames = {Path(rec.file).name: rec for rec in read_manifest(folder)}
        return cls(
            words,
            settings,
            paths=[it.path for it in items],
            folder=folder,
            frame=np.array([_rec(frames, it.path).frame for it in items], dtype=np.int64),
            time=np.array([np.nan if it.time is None else it.time for it in items]),
            video=[_rec(frames, it.path).video for it in items],
            quality=quality,
            result=result,
            unreadable=list(report.unreadable),
        )

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        settings: ReviewSettings | None = None,
        *,
        frame: Sequence[int] | None = None,
        time: Sequence[float] | None = None,
        video: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Review:
        """Image files in the order given (a stills layer's files), hashed like ``dedup``.

        Same :func:`hash_files` path as the CLI (normalisation, cache, pool);
        unreadable files are listed in ``unreadable`` and left out.

        Raises
        ------
        InputError
            No readable file.
        Cancelled
            ``cancel`` was set.
        """
        settings = settings or ReviewSettings()
        paths = [Path(p) for p in paths]
        hashed = hash_files(
            paths,
            method=settings.method,
            hash_size=settings.hash_size,
            crop_borders=settings.crop_borders,
            with_sharpness=settings.keep == "sharpest",
            progress=progress,
            map_jobs=cancellable_map(cancel),
        )
        _check_cancel(cancel)
        good = [k for k, rec in enumerate(hashed.files) if rec.hash is not None]
        if not good:
            raise InputError(paths[0] if paths else Path("."), "no readable image")

        def pick(values: Sequence[Any] | None) -> list[Any] | None:
            return None if values is None else [values[k] for k in good]

        return cls(
            hashed.hash_array(),
            settings,
            paths=[paths[k] for k in good],
            frame=None if frame is None else np.asarray(pick(frame), dtype=np.int64),
            time=None if time is None else np.asarray(pick(time), dtype=float),
            video=pick(video),
            quality=_file_quality(settings.keep, [hashed.files[k] for k in good]),
            unreadable=[(r.path, r.error or "unreadable") for r in hashed.files if r.hash is None],
        )

    @classmethod
    def from_dedup_csv(
        cls, folder: str | os.PathLike[str], settings: ReviewSettings | None = None
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
            raise InputError(
                path, f"cannot read: {getattr(exc, 'strerror', None) or exc}"
            ) from None
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
        return cls(
            words,
            settings,
            paths=paths,
            original_paths=[folder / r["file"] for r in good],
            folder=folder,
            frame=np.array([_rec(frames, Path(r["file"])).frame for r in good], dtype=np.int64),
            time=np.array(times),
            video=[_rec(frames, Path(r["file"])).video for r in good],
            result=result,
        )

    @classmethod
    def from_frames(
        cls,
        frames: Any,
        settings: ReviewSettings | None = None,
        *,
        to_uint8: Callable[[np.ndarray], np.ndarray] | None = None,
        frame: np.ndarray | None = None,
        time: np.ndarray | None = None,
        video: Sequence[str] | str | None = None,
        chunk: int = _FRAME_CHUNK,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Review:
        """Hash the frames of a stack, ``chunk`` frames at a time.

        Parameters
        ----------
        frames : array-like, shape (N, H, W) or (N, H, W, C)
            Anything sliceable along its first axis (a lazy video array):
            only ``chunk`` frames are in memory at once.
        settings : ReviewSettings, optional
            Default: the CLI's defaults.
        to_uint8 : callable, optional
            Converts a chunk to uint8 (e.g. through a layer's contrast limits).
        frame, time, video : optional
            Per-frame video frame number, time (s) and video name.
        chunk : int, optional
            Frames read per step.
        progress : callable(done, total), optional
            Hashing progress.
        cancel : threading.Event, optional
            Stops hashing (raises :class:`Cancelled`).

        Returns
        -------
        Review
        """
        settings = settings or ReviewSettings()
        n = int(frames.shape[0])
        words = np.zeros((n, max(1, math.ceil(settings.n_bits / 64))), dtype=np.uint64)
        quality: list[Any] = []
        for lo in range(0, n, chunk):
            _check_cancel(cancel)
            block = np.asarray(frames[lo : lo + chunk])
            if to_uint8 is not None:
                block = to_uint8(block)
            if block.ndim == 4 and block.shape[-1] == 1:
                block = block[..., 0]
            words[lo : lo + len(block)] = hash_frames(
                block,
                method=settings.method,
                hash_size=settings.hash_size,
                crop_borders=settings.crop_borders,
            )
            if settings.keep == "sharpest":
                quality.extend(sharpness(f) for f in block)
            elif settings.keep == "largest":
                quality.extend([block.shape[1] * block.shape[2]] * len(block))
            if progress is not None:
                progress(min(n, lo + chunk), n)
        videos = [video] * n if isinstance(video, str) else video
        return cls(
            words,
            settings,
            frame=np.arange(n) if frame is None else frame,
            time=time,
            video=videos,
            quality=np.asarray(quality, dtype=float) if quality else None,
        )

    # ------------------------------------------------------------ clustering

    def _cluster(self, settings: ReviewSettings) -> ClusterResult:
        key = (int(settings.threshold), settings.mode)
        found = self._clusterings.get(key)
        if found is not None:
            return found
        keep = settings.keep if self.quality is not None else "first"
        result = cluster_hashes(
            self.hashes,
            threshold=int(settings.threshold),
            mode=settings.mode,
            keep=keep,
            quality=self.quality if keep != "first" else None,
            n_bits=settings.n_bits,
        )
        self._clusterings[key] = result
        return result

    def precompute(
        self, thresholds: Iterable[int], *, cancel: threading.Event | None = None
    ) -> None:
        """Cluster at each of ``thresholds`` now (current mode), so moving there is a lookup.

        Meant for a background thread after the hashes are known; stops
        quietly when ``cancel`` is set.
        """
        for threshold in thresholds:
            if cancel is not None and cancel.is_set():
                return
            self._cluster(replace(self.settings, threshold=int(threshold)))

    def recluster(self, *, threshold: int | None = None, mode: str | None = None) -> None:
        """Cluster the stored hashes again with a new threshold and/or mode.

        Overrides (kept/duplicate marks and keeper picks) stay on their items.

        Raises
        ------
        ValueError
            Bad threshold or mode (the message names the setting).
        """
        changes: dict[str, Any] = {}
        if threshold is not None:
            changes["threshold"] = int(threshold)
        if mode is not None:
            changes["mode"] = mode
        settings = replace(self.settings, **changes)
        self._result = self._cluster(settings)
        self.settings = settings
        self._derive()

    def _derive(self) -> None:
        """Keeper, kept and distance from the clustering and the overrides."""
        res = self._result
        n = self.n
        self.cluster = res.cluster
        self.auto_kept = res.kept
        keeper_of = np.zeros(res.n_clusters and int(res.cluster.max()) + 1, dtype=np.int64)
        if n:
            keeper_of[res.cluster] = res.kept_index
            picked = np.flatnonzero(self.keeper_pick)
            # The first pick of a cluster wins when re-clustering merged two.
            for i in picked[::-1]:
                keeper_of[res.cluster[i]] = i
        self.keeper = keeper_of[res.cluster] if n else np.zeros(0, np.int64)
        kept = np.arange(n) == self.keeper
        kept[self.override == 1] = True
        kept[self.override == -1] = False
        self.kept = kept
        self.distance = (
            hamming_bits(self.hashes, self.hashes[self.keeper]).astype(np.int64)
            if n
            else np.zeros(0, np.int64)
        )
        self.cluster_ids = np.unique(res.cluster)

    # -------------------------------------------------------------- overrides

    def mark(self, index: int, decision: str | None) -> None:
        """Mark item ``index`` kept (``"keep"``), duplicate, or back to the engine's (None)."""
        if decision not in _OVERRIDE_CODE:
            raise ValueError(f"decision must be 'keep', 'duplicate' or None, got {decision!r}")
        self.override[index] = _OVERRIDE_CODE[decision]
        if decision == DUPLICATE:
            self.keeper_pick[index] = False
        self._derive()

    def set_kept(self, index: int, kept: bool) -> None:
        """Kept or duplicate by hand; the engine's own decision clears the override."""
        auto = int(self.keeper[index]) == index
        self.mark(index, None if bool(kept) == auto else (KEEP if kept else DUPLICATE))

    def make_keeper(self, index: int) -> None:
        """Make item ``index`` the keeper of its cluster (distances are then to it)."""
        members = self.members(int(self.cluster[index]))
        self.keeper_pick[members] = False
        self.override[members[self.override[members] == 1]] = 0
        self.keeper_pick[index] = True
        self.override[index] = 0
        self._derive()

    def clear_overrides(self) -> None:
        """Back to the engine's decisions."""
        self.override[:] = 0
        self.keeper_pick[:] = False
        self._derive()

    # ----------------------------------------------------------------- views

    @property
    def n(self) -> int:
        """Number of items."""
        return len(self.hashes)

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return len(self.cluster_ids)

    @property
    def n_overrides(self) -> int:
        """Items whose decision differs from the engine's."""
        return int((self.kept != self.auto_kept).sum())

    def members(self, cluster: int) -> np.ndarray:
        """Item indices of a cluster, in capture order."""
        return np.flatnonzero(self.cluster == cluster)

    def summary(self) -> str:
        """One line: items, clusters, kept, duplicates, hand-made changes."""
        n_kept = int(self.kept.sum())
        text = (
            f"{self.n} stills, {self.n_clusters} clusters, {n_kept} kept, "
            f"{self.n - n_kept} duplicates (threshold {self.settings.threshold} bits)"
        )
        if self.n_overrides:
            text += f", {self.n_overrides} changed by hand"
        return text

    def label(self, index: int) -> str:
        """Short label of an item: file name or frame, time, decision."""
        if self.paths is not None:
            what = self.paths[index].name
        else:
            what = f"frame {int(self.frame[index])}"
        t = format_time(float(self.time[index]))
        word = "KEPT" if self.kept[index] else f"DUPLICATE d={int(self.distance[index])}"
        return f"{what}{' ' + t if t else ''} c{int(self.cluster[index])} {word}"

    def nearest_distances(self) -> np.ndarray:
        """Hamming distance of every item to its nearest other item (computed once).

        The threshold histogram: an item becomes a duplicate candidate once
        the threshold reaches its value.
        """
        if self._nearest is None:
            n = self.n
            out = np.full(n, self.settings.n_bits, dtype=np.int64)
            for lo in range(0, n, _NEAREST_BLOCK):
                block = self.hashes[lo : lo + _NEAREST_BLOCK]
                d = hamming_bits(block[:, None, :], self.hashes[None, :, :])
                d[np.arange(len(block)), np.arange(lo, lo + len(block))] = self.settings.n_bits + 1
                out[lo : lo + len(block)] = np.minimum(d.min(axis=1), self.settings.n_bits)
            self._nearest = out
        return self._nearest

    def histogram(self) -> np.ndarray:
        """Counts of :meth:`nearest_distances` per bit value, ``0..n_bits``."""
        return np.bincount(self.nearest_distances(), minlength=self.settings.n_bits + 1)

    def hex_hashes(self) -> list[str]:
        """Hex hash of each item (as in ``dedup.csv``)."""
        return hashes_to_hex(self.hashes, self.settings.n_bits)


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _NoRecord:
    frame: int = -1
    video: str = ""


def _rec(frames: dict[str, Any], path: Path) -> Any:
    return frames.get(path.name, _NoRecord())


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

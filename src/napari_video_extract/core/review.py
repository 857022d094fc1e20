"""The duplicate review model: clusters, keepers, distances and the user's overrides.

A :class:`Review` holds the hashes of a set of items -- the images of a folder
or the frames of a video -- and the clustering of those hashes by the engine
(:func:`~napari_video_extract.core.matching.cluster_verified`: hash
candidates verified on thumbnails made in the same pass, as ``dedup`` does by
default; :func:`~napari_video_extract.core.dedup.cluster_hashes` only with
``verify=False``). On top of it the
user's decisions: mark an item kept or duplicate, make an item the keeper of
its cluster. Overrides are stored per item, not per cluster, so they survive
re-clustering when the threshold changes (re-clustering only runs on the hashes
and thumbnails already computed: no file is read again).

Built by :meth:`Review.from_folder` (exactly the CLI ``dedup``'s clusters),
:meth:`Review.from_files`, :meth:`Review.from_dedup_csv` (review and correct a
CLI run) or :meth:`Review.from_frames` (a lazy video layer, chunk by chunk),
all through the engine the CLI uses: see :mod:`.review_sources` and
:mod:`.stack_review`.

Its settings (:class:`ReviewSettings`, the CLI's ``dedup`` options) live in
:mod:`~napari_video_extract.core.review_settings` and are importable from here;
applying the decisions lives in :mod:`~napari_video_extract.core.review_apply`.
No Qt, no napari: the model is tested without a display.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract.core.dedup import (
    ClusterResult,
    cluster_hashes,
)
from napari_video_extract.core.hashing import (
    hamming_bits,
    hashes_to_hex,
)
from napari_video_extract.core.review_settings import ReviewSettings

__all__ = ["DUPLICATE", "KEEP", "Cancelled", "Review", "ReviewSettings", "format_time"]

#: Override values of :meth:`Review.mark`.
KEEP = "keep"
DUPLICATE = "duplicate"
_OVERRIDE_CODE = {None: 0, KEEP: 1, DUPLICATE: -1}


class Cancelled(Exception):
    """Raised inside a review step when its ``cancel`` event is set."""


def _raise_if_set(
    cancel: threading.Event | None, progress: Callable[[int, int], None] | None = None
) -> Callable[[int, int], None] | None:
    """The verified clustering's block callback: report ``progress``, stop on ``cancel``."""
    if cancel is None and progress is None:
        return None

    def check(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if cancel is not None and cancel.is_set():
            raise Cancelled

    return check


def format_time(seconds: float | None, *, unknown: str = "") -> str:
    """``mm:ss.mmm`` (``h:mm:ss.mmm`` past an hour); ``unknown`` for None or NaN."""
    if seconds is None or not math.isfinite(seconds):
        return unknown
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m:02d}:{s:02d}.{ms:03d}"


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
    thumbnails : ndarray of uint8 (N, *THUMB_SHAPE), or callable, optional
        Verification thumbnails from the pass that made the hashes (a memmap
        is fine), or a function returning them when first needed (None from
        it: hash-only clustering). Needed when ``settings.verify``.
    sequence : ndarray of int64, optional
        Neighbouring stills of one video (see ``cluster_verified``).
    result : ClusterResult, optional
        A clustering to start from (else computed from the hashes).
    unreadable : list of (Path, str), optional
        Files that could not be hashed (not items).
    cancel : threading.Event, optional
        Stops the first (verified) clustering: raises :class:`Cancelled`.
    progress : callable(done, total), optional
        Progress of the first clustering when it is verified (items placed,
        reported a block of items at a time); hash-only clustering is
        milliseconds and reports nothing.
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
        thumbnails: np.ndarray | Callable[[], np.ndarray | None] | None = None,
        sequence: np.ndarray | None = None,
        result: ClusterResult | None = None,
        unreadable: Sequence[tuple[Path, str]] = (),
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
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
        self._thumbnails = thumbnails
        self.sequence = None if sequence is None else np.asarray(sequence, dtype=np.int64)
        self.unreadable = list(unreadable)
        self.override = np.zeros(n, dtype=np.int8)  # 1 keep, -1 duplicate, 0 engine
        self.keeper_pick = np.zeros(n, dtype=bool)
        # Every pair within a bound, found once (core.close_pairs): the
        # histogram and each hash-only global clustering come from it.
        self._close: Any = None
        self._close_lock = threading.Lock()
        # Clusterings by (threshold, mode): moving the threshold back and forth
        # (or after precompute()) is a lookup, not a new clustering.
        self._clusterings: dict[tuple[Any, ...], ClusterResult] = {}
        # Verified pair similarities do not depend on the threshold or mode:
        # every clustering of this review reuses the pairs earlier ones checked.
        self._pairs: Any = None
        if result is not None:
            self._clusterings[self._key(settings)] = result
        if result is None:
            result = self._cluster(settings, cancel=cancel, progress=progress)
        self._result = result
        self._derive()

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], settings: ReviewSettings | None = None,
                    **kwargs: Any) -> Review:  # fmt: skip
        """A folder's images, clustered exactly as ``dedup`` does (see :mod:`.review_sources`)."""
        from napari_video_extract.core.review_sources import folder_review

        return folder_review(folder, settings, **kwargs)

    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike[str]],
                   settings: ReviewSettings | None = None, **kwargs: Any) -> Review:  # fmt: skip
        """Image files in the order given, hashed like ``dedup`` (see :mod:`.review_sources`)."""
        from napari_video_extract.core.review_sources import files_review

        return files_review(paths, settings, **kwargs)

    @classmethod
    def from_dedup_csv(cls, folder: str | os.PathLike[str],
                       settings: ReviewSettings | None = None) -> Review:  # fmt: skip
        """The clusters a CLI ``dedup`` run wrote to ``dedup.csv`` (see :mod:`.review_sources`)."""
        from napari_video_extract.core.review_sources import dedup_csv_review

        return dedup_csv_review(folder, settings)

    @classmethod
    def from_frames(cls, frames: Any, settings: ReviewSettings | None = None,
                    **kwargs: Any) -> Review:  # fmt: skip
        """Frames of a (lazy) stack, a chunk at a time (see :mod:`.stack_review`)."""
        from napari_video_extract.core.stack_review import frames_review

        return frames_review(frames, settings, **kwargs)

    # ------------------------------------------------------------ clustering

    @staticmethod
    def _key(settings: ReviewSettings) -> tuple[Any, ...]:
        return (int(settings.threshold), settings.mode)

    @property
    def thumbnails(self) -> np.ndarray | None:
        """Verification thumbnails (None: none could be made; hash-only)."""
        if callable(self._thumbnails):
            self._thumbnails = self._thumbnails()
        return self._thumbnails

    def _cluster(
        self,
        settings: ReviewSettings,
        *,
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ClusterResult:
        key = self._key(settings)
        found = self._clusterings.get(key)
        if found is not None:
            return found
        keep = settings.keep if self.quality is not None else "first"
        quality = self.quality if keep != "first" else None
        thumbnails = self.thumbnails if settings.verify else None
        if thumbnails is not None:
            from napari_video_extract.core.matching import PairSimilarities, cluster_verified

            if self._pairs is None or self._pairs.changes != settings.changes:
                self._pairs = PairSimilarities(self.n, changes=settings.changes)
            # A re-clustering (pairs verified already, most looked up) uses the
            # close pairs (cluster_verified); the first one's time is the
            # verification's.
            again = settings.mode == "global" and len(self._pairs)
            close = self.close_pairs(cancel=cancel) if again else None
            result: ClusterResult = cluster_verified(
                self.hashes, thumbnails, threshold=int(settings.threshold),
                min_similarity=settings.min_similarity, changes=settings.changes,
                mode=settings.mode, keep=keep, quality=quality, sequence=self.sequence,
                pairs=self._pairs, close_pairs=close, progress=_raise_if_set(cancel, progress),
            )  # fmt: skip
        else:
            # Re-clusterings (not the first, which the histogram's pass follows)
            # filter the close pairs.
            again = settings.mode == "global" and (self._clusterings or self._close is not None)
            close = self.close_pairs(cancel=cancel) if again else None
            result = cluster_hashes(
                self.hashes, threshold=int(settings.threshold), mode=settings.mode, keep=keep,
                quality=quality, n_bits=settings.n_bits, close_pairs=close,
            )  # fmt: skip
        self._clusterings[key] = result
        return result

    def precompute(
        self, thresholds: Iterable[int], *, cancel: threading.Event | None = None
    ) -> None:
        """Cluster at each of ``thresholds`` now (current mode), so moving there is a lookup.

        Meant for a background thread after the hashes are known; stops
        quietly when ``cancel`` is set (within a block of items of a
        verified clustering).
        """
        for threshold in thresholds:
            if cancel is not None and cancel.is_set():
                return
            try:
                self._cluster(replace(self.settings, threshold=int(threshold)), cancel=cancel)
            except Cancelled:
                return
            except RuntimeError:
                # The verifier's threads refuse work once the interpreter
                # exits. Only a warm-up: recluster() would redo the step in
                # the foreground, where any real error shows.
                return

    def is_clustered(self, *, threshold: int) -> bool:
        """The clustering at ``threshold`` (current mode) is computed: a lookup away."""
        return self._key(replace(self.settings, threshold=int(threshold))) in self._clusterings

    def cluster_at(self, threshold: int, *, cancel: threading.Event | None = None) -> None:
        """Compute and remember the clustering at ``threshold`` without applying it.

        Safe in a worker thread while the main thread reads the current one:
        :meth:`recluster` to the same threshold then only looks it up.
        """
        self._cluster(replace(self.settings, threshold=int(threshold)), cancel=cancel)

    def recluster(self, *, threshold: int | None = None, mode: str | None = None) -> None:
        """Cluster the stored hashes again with a new threshold and/or mode.

        Overrides (kept/duplicate marks and keeper picks) stay on their items.
        A verified clustering looks up every pair an earlier clustering of this
        review verified (at any threshold or mode) and verifies only the new
        ones, so after one clustering (or :meth:`precompute`) moving the
        threshold costs the candidate search alone; the result equals a fresh
        :func:`~napari_video_extract.core.matching.cluster_verified`.

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
        # Verified similarity to the keeper, when the engine measured it (NaN
        # for an item whose keeper the user changed, or hash-only clustering).
        similarity = np.full(n, np.nan)
        engine = getattr(res, "similarity", None)
        if engine is not None and len(engine) == n:
            same = self.keeper == res.kept_index
            similarity[same] = np.asarray(engine, dtype=float)[same]
        self.similarity = similarity
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

    def close_pairs(self, *, cancel: threading.Event | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Any:  # fmt: skip
        """The pairs of items within a bound, found once (:class:`.close_pairs.ClosePairs`).

        One pass over every pair (0.3 s at 10,000 stills, 8-11 s at 100,000),
        reported to ``progress`` (items compared, in all) and stopped by
        ``cancel`` (raises :class:`Cancelled`; nothing is kept); thread-safe.
        """
        with self._close_lock:
            if self._close is None:
                from napari_video_extract.core.close_pairs import ClosePairs

                self._close = ClosePairs(self.hashes, n_bits=self.settings.n_bits,
                                         progress=_raise_if_set(cancel, progress))  # fmt: skip
            return self._close

    def nearest_distances(self, **kwargs: Any) -> np.ndarray:
        """Distance in bits of every item to its nearest other item (computed once).

        The threshold histogram: an item becomes a duplicate candidate once
        the threshold reaches its value. ``cancel``, ``progress``: see
        :meth:`close_pairs`.
        """
        return self.close_pairs(**kwargs).nearest

    def histogram(self) -> np.ndarray:
        """Counts of :meth:`nearest_distances` per bit value, ``0..n_bits``."""
        return np.bincount(self.nearest_distances(), minlength=self.settings.n_bits + 1)

    def hex_hashes(self) -> list[str]:
        """Hex hash of each item (as in ``dedup.csv``)."""
        return hashes_to_hex(self.hashes, self.settings.n_bits)

"""Items that arrive in capture order while a verified clustering already runs.

A verified clustering (:func:`cluster_arriving`: the loop of
:func:`~napari_video_extract.core.verified_loop.cluster_blocks`) places
each item against the items before it only, a block at a time, so it can
start on the first blocks while the hashing pool is still decoding the
later files. :class:`ArrivingItems` is the buffer between the two: the
producer (the thread collecting the pool's results) appends each item's
hash, thumbnail and video id in order; the clustering thread waits until the
block it needs has arrived (or the producer has finished or given up).

References come first: the clustering makes their clusters before the first
other item, so it waits until the first non-reference item has arrived.
"""

from __future__ import annotations

import threading

import numpy as np

from napari_video_extract.core.clustering import check_cluster_inputs
from napari_video_extract.core.comparison_sides import THUMB_SHAPE
from napari_video_extract.core.verified_loop import (
    MAX_CANDIDATES,
    VerifiedClusterResult,
    cluster_blocks,
)

__all__ = ["ArrivalAborted", "ArrivingItems", "cluster_arriving"]


class ArrivalAborted(Exception):
    """The producer gave up: the clustering waiting for items stops."""


class ArrivingItems:
    """Hashes, thumbnails and video ids appended in order, waited for by a clustering.

    Parameters
    ----------
    capacity : int
        Most items that can arrive (the buffers are allocated at once).
    n_words : int
        ``uint64`` words per hash.

    Attributes
    ----------
    hashes : ndarray of uint64, shape (capacity, n_words)
    thumbnails : ndarray of uint8, shape (capacity, *THUMB_SHAPE)
    sequence : ndarray of int64, shape (capacity,)
        Video id of each item (``-1``: none); see
        :func:`~napari_video_extract.core.matching.cluster_verified`.
    reference : ndarray of bool, shape (capacity,)
    quality : ndarray or None
        Given with :meth:`finish` (``keep="sharpest"``/``"largest"``).

    Notes
    -----
    Only the rows before :attr:`count` are read by the consumer; a row is
    written before the count that publishes it is raised (under the lock).
    """

    def __init__(self, capacity: int, n_words: int) -> None:
        capacity = int(capacity)
        self.hashes = np.zeros((capacity, int(n_words)), dtype=np.uint64)
        self.thumbnails = np.zeros((capacity, *THUMB_SHAPE), dtype=np.uint8)
        self.sequence = np.full(capacity, -1, dtype=np.int64)
        self.reference = np.zeros(capacity, dtype=bool)
        self.quality: np.ndarray | None = None
        self._count = 0
        self._n_refs = 0
        self._refs_closed = False  # a non-reference item has arrived
        self._finished = False
        self._aborted = False
        self._cond = threading.Condition()

    @property
    def capacity(self) -> int:
        """Rows allocated."""
        return len(self.hashes)

    @property
    def count(self) -> int:
        """Items arrived so far."""
        with self._cond:
            return self._count

    def add(self, words: np.ndarray, thumbnail: np.ndarray, *, sequence: int = -1,
            reference: bool = False) -> None:  # fmt: skip
        """Append one item.

        Raises
        ------
        ValueError
            The buffers are full, a reference after a non-reference item, or
            the producer has finished.
        """
        with self._cond:
            k = self._count
            if self._aborted:  # the clustering is gone: nothing waits for it
                return
            if self._finished:
                raise ValueError("no item can arrive after finish()")
            if k >= self.capacity:
                raise ValueError(f"more than {self.capacity} items")
            if reference and self._refs_closed:
                raise ValueError("references must arrive before the other items")
        self.hashes[k] = words
        self.thumbnails[k] = thumbnail
        self.sequence[k] = sequence
        self.reference[k] = reference
        with self._cond:
            self._count = k + 1
            if reference:
                self._n_refs += 1
            else:
                self._refs_closed = True
            self._cond.notify_all()

    def finish(self, *, quality: np.ndarray | None = None) -> None:
        """No more items: the clustering takes the last, short block and ends."""
        with self._cond:
            self.quality = quality
            self._finished = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Give up: a clustering waiting (or about to wait) raises :class:`ArrivalAborted`."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def arrived_quality(self, keep: str) -> np.ndarray | None:
        """The quality given to :meth:`finish`, checked (``None`` for ``keep="first"``).

        Raises
        ------
        ValueError
            Missing or of the wrong shape.
        """
        if keep == "first":
            return None
        hashes = self.hashes[: self.count]
        return check_cluster_inputs(hashes, "global", keep, 0, None, self.quality)[2]

    def wait(self, count: int) -> int:
        """Block until ``count`` items have arrived or the producer finished.

        Returns
        -------
        int
            ``min(count, items arrived)``: less than ``count`` only at the end.

        Raises
        ------
        ArrivalAborted
            :meth:`abort` was called.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._aborted or self._finished or self._count >= count)
            if self._aborted:
                raise ArrivalAborted
            return min(int(count), self._count)

    def n_references(self) -> int:
        """The number of references (blocks until the first other item or the end).

        Raises
        ------
        ArrivalAborted
            :meth:`abort` was called.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._aborted or self._finished or self._refs_closed)
            if self._aborted:
                raise ArrivalAborted
            return self._n_refs


def cluster_arriving(
    arriving: ArrivingItems,
    *,
    threshold: int,
    min_similarity: float | None = None,
    changes: str = "global",
    mode: str = "global",
    keep: str = "first",
    max_candidates: int = MAX_CANDIDATES,
) -> VerifiedClusterResult:
    """:func:`cluster_verified` of items that are still arriving, a block as soon as it is in.

    Each block of items is placed against the items before it only, so the
    result is the one :func:`cluster_verified` gives for the same items
    (``reference_mask=arriving.reference``, ``sequence=arriving.sequence``,
    ``quality=arriving.quality``, all cut to the items that arrived): the
    same blocks, the same operations, in the same order; it just waits
    before each block until the block has arrived.

    Parameters
    ----------
    arriving : ArrivingItems
        Filled (in capture order, references first) by another thread, which
        ends with :meth:`~napari_video_extract.core.arriving_items.ArrivingItems.finish`
        (or ``abort``).
    threshold, min_similarity, changes, mode, keep, max_candidates
        As for :func:`cluster_verified`.

    Returns
    -------
    VerifiedClusterResult
        Over the items that arrived.

    Raises
    ------
    ArrivalAborted
        The producer gave up.
    ValueError
        Bad settings.
    """
    if keep != "first":  # the quality arrives with finish(); its shape is checked then
        check_cluster_inputs(arriving.hashes[:0], mode, keep, threshold, None, np.zeros(0))
    else:
        check_cluster_inputs(arriving.hashes[:0], mode, keep, threshold, None, None)
    return cluster_blocks(
        arriving.hashes, arriving.thumbnails, arriving.reference, None, arriving.sequence,
        arriving, threshold=threshold, min_similarity=min_similarity, changes=changes,
        mode=mode, keep=keep, max_candidates=max_candidates, pairs=None, close_pairs=None,
        progress=None,
    )  # fmt: skip

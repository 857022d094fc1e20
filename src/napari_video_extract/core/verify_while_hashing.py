"""Verified clustering that runs while the hashing pool is still decoding.

:func:`~napari_video_extract.core.dedup.dedup_folders` hashes the files in a
process pool, then clusters them with verification
(:func:`~napari_video_extract.core.matching.cluster_verified`), which runs
in this process. Done one after the other, the pool's workers sit idle
while the clustering runs on one core. :class:`VerifyWhileHashing` starts
the clustering in a thread at once
(:func:`~napari_video_extract.core.arriving_items.cluster_arriving`) and
feeds it the files' hashes and thumbnails in order as
:func:`~napari_video_extract.core.hashing.hash_files` makes them (its
``on_record`` hook), so both cores stay busy.

The result is the one clustering after hashing gives, decision for
decision: the clustering places each block of items against the items
before it only, so a prefix of the items is clustered the same whatever
follows it. What the thread was fed is checked against the final records
(same readable files, same hashes, same thumbnails); if anything differs, it
is stopped and the clustering is done again from the final records.

A record can still change after it is made: the stills of one video are
cropped with one box (:mod:`~napari_video_extract.core.crop_consensus`),
known only when every still has been hashed; a still whose crop differs is
decoded again. Feeding stops at the first still whose crop differs from its
video's consensus so far (it will be decoded again); the rest is fed from
the final records. Should a later still narrow the consensus, stills
already fed change, and the check above sends the run to the fallback.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_video_extract.core.arriving_items import (
    ArrivalAborted,
    ArrivingItems,
    cluster_arriving,
)
from napari_video_extract.core.verified_loop import VerifiedClusterResult

__all__ = ["VerifyWhileHashing"]


class VerifyWhileHashing:
    """Feeds hash records to a verified clustering running in a thread.

    Parameters
    ----------
    references : sequence of bool
        Per path given to ``hash_files``: a reference image (references
        come first).
    sequence : sequence of int
        Per path: its video id (``-1``: none), as ``crop_groups`` and the
        clustering's ``sequence``.
    n_words : int
        ``uint64`` words per hash.
    crop_borders : bool
        The hashing crops borders (so records may be decoded again).
    **settings
        Keyword arguments of :func:`~napari_video_extract.core.arriving_items.cluster_arriving`.

    Notes
    -----
    :meth:`on_record` is called from the thread running ``hash_files``;
    :meth:`result` (or :meth:`cancel`) must follow, also when hashing fails.
    """

    def __init__(
        self,
        references: Sequence[bool],
        sequence: Sequence[int],
        *,
        n_words: int,
        crop_borders: bool,
        **settings: Any,
    ) -> None:
        self._references = [bool(r) for r in references]
        self._sequence = [int(s) for s in sequence]
        self._crop_borders = crop_borders
        self._arriving = ArrivingItems(len(self._references), n_words)
        self._records: list[Any] = [None] * len(self._references)
        self._next = 0  # first path not fed (nor skipped as unreadable)
        self._fed: list[int] = []  # paths fed, in order
        self._held = False  # feeding stopped: the rest comes from the final records
        #: Records fed while hashing (set to 0 by :meth:`result` if they were stale).
        self.fed_while_hashing = 0
        self._thinnest: dict[tuple[int, int, int], list[int]] = {}  # crop consensus so far
        self._result: VerifiedClusterResult | None = None
        self._error: BaseException | None = None
        # Started with the first freshly hashed record: the hashing pool forks
        # its workers only while this process has no other thread (hash_pool).
        self._thread = threading.Thread(
            target=self._run, args=(settings,), name="nve-cluster", daemon=True
        )

    def _run(self, settings: dict[str, Any]) -> None:
        try:
            self._result = cluster_arriving(self._arriving, **settings)
        except ArrivalAborted:
            pass
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    # ------------------------------------------------------------ producer side

    def on_record(self, i: int, record: Any) -> None:
        """``hash_files``' ``on_record``: feed the records ready in order."""
        if self._held:
            return
        if self._records[i] is not None:  # decoded again: the rest from the final records
            self._held = True
            return
        self._records[i] = record
        if not record.from_cache and record.hash is not None and self._thread.ident is None:
            self._thread.start()
        self._note_box(i, record)
        while self._next < len(self._records):
            ready = self._records[self._next]
            if ready is None:
                return
            if ready.hash is not None:
                if ready.thumbnail is None or not self._crop_settled(self._next, ready):
                    self._held = True
                    return
                self._feed(self._next, ready)
            self._next += 1

    def _feed(self, i: int, record: Any) -> None:
        self._arriving.add(
            record.hash.words,
            record.thumbnail,
            sequence=self._sequence[i],
            reference=self._references[i],
        )
        self._fed.append(i)

    def _note_box(self, i: int, record: Any) -> None:
        """Add a record's own bars to its video's consensus (as ``consensus_boxes`` does)."""
        box, group = record.border_box, self._sequence[i]
        if box is None or group < 0 or box.blank:
            return
        key = (group, box.width, box.height)
        sides = self._thinnest.get(key)
        margins = list(box.margins)
        self._thinnest[key] = margins if sides is None else list(map(min, sides, margins))

    def _crop_settled(self, i: int, record: Any) -> bool:
        """The record's crop is its video's consensus so far (else it is decoded again).

        The rule of ``crop_consensus.consensus_boxes`` again, applied as the
        records arrive: should the two differ, only speed suffers (the check
        of the final records in :meth:`result` sends the run to the fallback).
        """
        box, group = record.border_box, self._sequence[i]
        if not self._crop_borders or box is None:
            return True
        if group >= 0:
            sides = self._thinnest.get((group, box.width, box.height), [0, 0, 0, 0])
            box = box._replace(left=sides[0], top=sides[1], right=sides[2], bottom=sides[3])
        return record.crop_box is not None and tuple(box[:6]) == tuple(record.crop_box[:6])

    # ------------------------------------------------------------------- result

    def cancel(self) -> None:
        """Stop the clustering (hashing failed); waits for the thread."""
        self._arriving.abort()
        if self._thread.ident is not None:
            self._thread.join()

    def result(
        self, files: Sequence[Any], quality: np.ndarray | None
    ) -> VerifiedClusterResult | None:
        """The clustering of the final records, or ``None`` if what was fed differs.

        Parameters
        ----------
        files : sequence of FileHash
            ``hash_files``' final records, one per path.
        quality : ndarray, optional
            Per readable file, for ``keep="sharpest"``/``"largest"``.

        Returns
        -------
        VerifiedClusterResult or None
            ``None``: a fed record changed (the thread is stopped); cluster
            the final records instead.

        Raises
        ------
        Exception
            Whatever the clustering raised.
        """
        readable = [i for i, record in enumerate(files) if record.hash is not None]
        n_fed = len(self._fed)
        # Fed while hashing only if the thread ran then (all from the caches: it starts below).
        self.fed_while_hashing = n_fed if self._thread.ident is not None else 0
        same = readable[:n_fed] == self._fed
        if same and n_fed:
            # One record at a time: stacking them all would hold one more copy
            # of every thumbnail (~9 KB a still) at the run's peak.
            fed_hashes, fed_thumbs = self._arriving.hashes, self._arriving.thumbnails
            for k, i in enumerate(self._fed):
                record = files[i]
                words = np.asarray(record.hash.words, dtype=np.uint64)
                if not (
                    np.array_equal(words.reshape(fed_hashes[k].shape), fed_hashes[k])
                    and np.array_equal(record.thumbnail, fed_thumbs[k])
                ):
                    same = False
                    break
        if not same or any(files[i].thumbnail is None for i in readable[n_fed:]):
            # What was fed is stale: whatever the thread did with it (even an
            # error) does not count, the caller clusters the final records.
            self.fed_while_hashing = 0
            self.cancel()
            return None
        try:
            for i in readable[n_fed:]:
                self._feed(i, files[i])
        except BaseException:
            self.cancel()
            raise
        self._arriving.finish(quality=quality)
        if self._thread.ident is None:  # nothing hashed (all from the caches)
            self._thread.start()
        try:
            self._thread.join()
        except BaseException:  # e.g. Ctrl-C while the clustering's tail runs
            self.cancel()
            raise
        if self._error is not None:
            raise self._error
        return self._result

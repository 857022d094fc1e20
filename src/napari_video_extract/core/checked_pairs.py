"""The pairs a verified clustering checked: verified once, recorded in order.

:func:`~napari_video_extract.core.matching.cluster_verified` scores each
(kept image, candidate) pair through a :class:`PairRecorder`: a pair is
verified once (looked up in the clustering's own memo, then in a
:class:`~napari_video_extract.core.pair_memo.PairSimilarities` shared with
other clusterings of the same items) and every check is recorded, in the
order made, as :class:`CheckedPairs` (what
:mod:`~napari_video_extract.core.pair_diagnostics` reads). Rows the numpy
placement settled without the per-item loop are interleaved in block order
(:meth:`PairRecorder.add_block`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_video_extract.core.hashing import hamming_bits
from napari_video_extract.core.pair_memo import PairSimilarities
from napari_video_extract.core.verify import Verifier

__all__ = ["CheckedPairs", "PairRecorder"]


@dataclass
class CheckedPairs:
    """Every (image, kept image) pair that was verified.

    Attributes
    ----------
    item, kept : ndarray of int64, shape (M,)
        The image and the kept image it was compared with.
    distance : ndarray of int64, shape (M,)
        Hash distance in bits.
    similarity : ndarray of float64, shape (M,)
        Verified similarity.
    accepted : ndarray of bool, shape (M,)
        ``similarity >= min_similarity`` (the image may still have joined
        another, more similar candidate).
    """

    item: np.ndarray
    kept: np.ndarray
    distance: np.ndarray
    similarity: np.ndarray
    accepted: np.ndarray

    def __len__(self) -> int:
        return len(self.item)


class PairRecorder:
    """Verifies pairs once (memoised, optionally across clusterings) and records each check.

    Parameters
    ----------
    verifier : Verifier
        Scores a (kept, item) pair.
    hashes : ndarray of uint64, shape (N, W)
        The hashes (distances of the recorded pairs).
    min_similarity : float
        Smallest similarity of a duplicate (``accepted`` of the record).
    pairs : PairSimilarities, optional
        Similarities shared with other clusterings of the same items.
    """

    def __init__(
        self,
        verifier: Verifier,
        hashes: np.ndarray,
        min_similarity: float,
        pairs: PairSimilarities | None = None,
    ) -> None:
        self.verifier = verifier
        self.hashes = hashes
        self.min_similarity = min_similarity
        self.pairs = pairs
        # With a filled memo most pairs are looked up: nothing to prepare ahead.
        self.computes = pairs is None or len(pairs) == 0
        self.memo: dict[tuple[int, int], float] = {}
        self.rows: list[tuple[int, int, int, float]] = []
        self.chunks: list[np.ndarray] = []  # rows before ``rows``, in order
        self.settled: list[np.ndarray] = []  # chunk rows not in ``memo`` yet

    def distance(self, a: int, b: int) -> int:
        return int(hamming_bits(self.hashes[a], self.hashes[b]))

    def score(self, kept: int, item: int, distance: int | None = None) -> float:
        key = (kept, item)
        value = self.memo.get(key)
        if value is None:
            shared = self.pairs.values if self.pairs is not None else None
            value = shared.get(key) if shared is not None else None
            if value is None:
                value = self.verifier.score(kept, item)
                if shared is not None:
                    shared[key] = value
                    self.pairs.n_computed += 1
            self.memo[key] = value
            d = self.distance(kept, item) if distance is None else distance
            self.rows.append((item, kept, d, value))
        return value

    def add_block(self, start: int, positions: list[int], settled: np.ndarray,
                  settled_positions: np.ndarray) -> None:  # fmt: skip
        """Interleave the rows scored since ``start`` with rows settled in numpy.

        ``positions``: the block position of each row scored since ``start``;
        ``settled`` (M, 4) rows of (item, kept, distance, similarity) at
        ``settled_positions``. Rows end up in block order, as if each had been
        scored in turn.
        """
        if start:
            self.chunks.append(np.array(self.rows[:start], dtype=np.float64).reshape(-1, 4))
        scored = np.array(self.rows[start:], dtype=np.float64).reshape(-1, 4)
        self.rows = []
        at = np.concatenate([np.asarray(positions, dtype=np.int64), settled_positions])
        rows = np.concatenate([scored, settled])[np.argsort(at, kind="stable")]
        self.chunks.append(rows)
        self.settled.append(settled)

    def sync(self) -> None:
        """Put the settled rows in ``memo`` (before scoring pairs they may hold)."""
        for rows in self.settled:
            kept, item = rows[:, 1].astype(np.int64).tolist(), rows[:, 0].astype(np.int64).tolist()
            self.memo.update(zip(zip(kept, item, strict=True), rows[:, 3].tolist(), strict=True))
        self.settled = []

    def checked(self) -> CheckedPairs:
        rows = np.concatenate([*self.chunks, np.array(self.rows, dtype=np.float64).reshape(-1, 4)])
        sim = rows[:, 3]
        return CheckedPairs(
            item=rows[:, 0].astype(np.int64),
            kept=rows[:, 1].astype(np.int64),
            distance=rows[:, 2].astype(np.int64),
            similarity=sim,
            accepted=sim >= self.min_similarity,
        )

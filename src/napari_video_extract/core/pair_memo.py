"""Verified pair similarities, shared by every clustering of one set of items.

The napari review re-clusters the same hashes and thumbnails at each slider
threshold; an aligned comparison of (kept image, candidate) gives the same
similarity at every threshold and mode, so each clustering only verifies the
pairs none before it did (see
:func:`~napari_video_extract.core.matching.cluster_verified`, ``pairs=``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["PairSimilarities"]


class PairSimilarities:
    """Verified similarities of (kept, item) pairs, shared by clusterings of one set of items.

    The similarity of a pair does not depend on the candidate bound or the
    mode, only on the two thumbnails and ``changes``: pass one instance to
    every :func:`cluster_verified` of the same hashes and thumbnails (the
    napari review re-clustering at each slider threshold), and each
    clustering verifies only the pairs no earlier one did. Results are
    identical to a clustering without it.

    Parameters
    ----------
    n : int
        Number of items (rows of the hashes and thumbnails).
    changes : {"global", "local"}, optional
        The comparison the similarities were made with.
    """

    def __init__(self, n: int, *, changes: str = "global") -> None:
        self.n = int(n)
        self.changes = changes
        self.values: dict[tuple[int, int], float] = {}
        self.n_computed = 0  # pairs verified through this memo (not found in it)
        self._snapshot: tuple[np.ndarray, np.ndarray, int] | None = None  # see lookup

    def __len__(self) -> int:
        return len(self.values)

    def lookup(self, kept: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Similarities of the pairs ``(kept[i], item[i])``; NaN for a pair not verified yet.

        The same values as ``values.get`` pair by pair, for arrays at once:
        a sorted copy of the memo is searched (made again once the memo has
        grown by a quarter; pairs added since are looked up one by one). A
        pair's similarity is added once and never changed.
        """
        snapshot = self._snapshot
        if snapshot is None or len(self.values) > snapshot[2] + snapshot[2] // 4:
            # dict.copy() is one step under the GIL: safe while another thread adds.
            values = self.values.copy()
            pairs = np.array(list(values), dtype=np.int64).reshape(-1, 2)
            keys = pairs[:, 0] * self.n + pairs[:, 1]
            order = np.argsort(keys)
            found = np.fromiter(values.values(), dtype=np.float64, count=len(values))
            snapshot = self._snapshot = (keys[order], found[order], len(values))
        keys, found, size = snapshot
        query = np.asarray(kept, dtype=np.int64) * self.n + np.asarray(item, dtype=np.int64)
        out = np.full(len(query), np.nan)
        if len(keys):
            at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
            hit = keys[at] == query
            out[hit] = found[at[hit]]
        if len(self.values) != size:  # added since the copy
            get, nan = self.values.get, float("nan")
            for i in np.flatnonzero(np.isnan(out)).tolist():
                out[i] = get((int(kept[i]), int(item[i])), nan)
        return out

    def check(self, n: int, changes: str) -> None:
        """Raise ValueError unless made for ``n`` items compared with ``changes``."""
        if n != self.n or changes != self.changes:
            raise ValueError(
                f"pairs were made for {self.n} items with changes={self.changes!r}, "
                f"not {n} with changes={changes!r}"
            )

"""Verified pair similarities, shared by every clustering of one set of items.

The napari review re-clusters the same hashes and thumbnails at each slider
threshold; an aligned comparison of (kept image, candidate) gives the same
similarity at every threshold and mode, so each clustering only verifies the
pairs none before it did (see
:func:`~napari_video_extract.core.matching.cluster_verified`, ``pairs=``).
"""

from __future__ import annotations

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

    def __len__(self) -> int:
        return len(self.values)

    def check(self, n: int, changes: str) -> None:
        """Raise ValueError unless made for ``n`` items compared with ``changes``."""
        if n != self.n or changes != self.changes:
            raise ValueError(
                f"pairs were made for {self.n} items with changes={self.changes!r}, "
                f"not {n} with changes={changes!r}"
            )

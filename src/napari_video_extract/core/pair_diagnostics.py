"""What a verified clustering checked: the borderline pairs and histograms.

:func:`~napari_video_extract.core.matching.cluster_verified` records every
pair it verified (:class:`~napari_video_extract.core.checked_pairs.CheckedPairs`).
These functions read that record to show where the decision line sits; they
change no result (``napari-video-extract dedup --explain`` prints them).

Module-level API
----------------
:func:`explain`
    The closest rejected and the loosest accepted pairs.
:func:`histograms`
    Counts of the checked pairs by similarity and by hash distance, accepted
    and rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_video_extract.core.checked_pairs import CheckedPairs

if TYPE_CHECKING:
    from napari_video_extract.core.matching import VerifiedClusterResult

__all__ = ["Histogram", "explain", "histograms"]


def explain(result: VerifiedClusterResult, *, n: int = 10) -> dict[str, CheckedPairs]:
    """The pairs closest to the decision line.

    Parameters
    ----------
    result : VerifiedClusterResult
        From
        :func:`~napari_video_extract.core.matching.cluster_verified`.
    n : int, optional
        Pairs per list.

    Returns
    -------
    dict
        ``"closest_rejected"``: the rejected pairs of highest similarity;
        ``"loosest_accepted"``: the accepted pairs of lowest similarity
        (both as :class:`CheckedPairs`, most borderline first).
    """
    checked = result.checked
    if checked is None:
        raise ValueError("result has no checked pairs")

    def pick(mask: np.ndarray, descending: bool) -> CheckedPairs:
        idx = np.flatnonzero(mask)
        key = -checked.similarity[idx] if descending else checked.similarity[idx]
        idx = idx[np.lexsort((idx, key))][:n]
        return CheckedPairs(
            checked.item[idx],
            checked.kept[idx],
            checked.distance[idx],
            checked.similarity[idx],
            checked.accepted[idx],
        )

    return {
        "closest_rejected": pick(~checked.accepted, True),
        "loosest_accepted": pick(checked.accepted, False),
    }


@dataclass
class Histogram:
    """Counts of the checked pairs per bin.

    Attributes
    ----------
    edges : ndarray of float64, shape (B + 1,)
        Bin edges.
    accepted, rejected : ndarray of int64, shape (B,)
        Pairs verified as duplicates / as different.
    threshold : float
        Where the decision sits on this axis (``min_similarity``, or the
        candidate bound in bits).
    """

    edges: np.ndarray
    accepted: np.ndarray
    rejected: np.ndarray
    threshold: float


def histograms(result: VerifiedClusterResult, *, bins: int = 40) -> dict[str, Histogram]:
    """Histograms of the checked pairs by similarity and by hash distance.

    Parameters
    ----------
    result : VerifiedClusterResult
        From
        :func:`~napari_video_extract.core.matching.cluster_verified`.
    bins : int, optional
        Similarity bins over [-1, 1]; distance bins are one per bit up to the
        largest distance checked.

    Returns
    -------
    dict
        ``{"similarity": Histogram, "distance": Histogram}``.
    """
    checked = result.checked
    if checked is None:
        raise ValueError("result has no checked pairs")
    sim_edges = np.linspace(-1.0, 1.0, int(bins) + 1)
    top = int(checked.distance.max()) if len(checked) else result.threshold
    dist_edges = np.arange(0, max(top, result.threshold) + 2, dtype=np.float64) - 0.5
    out = {}
    for name, values, edges, line in (
        ("similarity", checked.similarity, sim_edges, result.min_similarity),
        ("distance", checked.distance.astype(np.float64), dist_edges, float(result.threshold)),
    ):
        acc = np.histogram(values[checked.accepted], bins=edges)[0].astype(np.int64)
        rej = np.histogram(values[~checked.accepted], bins=edges)[0].astype(np.int64)
        out[name] = Histogram(edges, acc, rej, line)
    return out

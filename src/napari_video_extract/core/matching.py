"""Two-stage duplicate matching: the hash proposes, an aligned comparison decides.

A perceptual hash alone cannot tell "the same view, slightly zoomed" from "a
different picture" (their distance distributions overlap). Here the hash only
proposes **candidates** for each image, in capture order:

* the nearest kept images (cluster representatives) within ``threshold``
  bits, at most ``max_candidates`` of them (ties: the older cluster);
* for stills of one video (items sharing a ``sequence`` id), the kept image
  of the previous still's cluster, whatever the hash says (a slow zoom moves
  the hash of a texture a long way);
* in ``"sequential"`` mode, the last kept image instead.

Each candidate is **verified** (:class:`~napari_video_extract.core.verify.Verifier`:
aligned, high-passed normalised cross-correlation of small grey thumbnails);
the image joins the candidate with the highest similarity of at least
``min_similarity`` (ties: the older cluster), else it starts a cluster.
Candidates are checked nearest (by hash) first, and one scoring at least
:data:`SURE_SIMILARITY` is taken at once (the rest are not checked).
Comparisons are always with a cluster's kept image, never with mere members,
so clusters do not chain; with ``keep="sharpest"``/``"largest"`` the kept
image is re-chosen only among members verified against every member
(:func:`~napari_video_extract.core.clustering.choose_keepers`). The result is
deterministic for a given item order.

Module-level API
----------------
:func:`cluster_verified`
    Hashes + thumbnails -> :class:`VerifiedClusterResult` (per item: cluster,
    kept item, hash distance and similarity to it; every pair checked).
:func:`~napari_video_extract.core.pair_diagnostics.explain`,
:func:`~napari_video_extract.core.pair_diagnostics.histograms`
    The borderline pairs and the histograms of the checked pairs (in
    :mod:`~napari_video_extract.core.pair_diagnostics`; importable from here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from napari_video_extract.core.checked_pairs import CheckedPairs
from napari_video_extract.core.pair_diagnostics import Histogram, explain, histograms
from napari_video_extract.core.pair_memo import PairSimilarities
from napari_video_extract.core.verified_loop import (
    MAX_CANDIDATES,
    SURE_SIMILARITY,
    VerifiedClusterResult,
    check_verified_inputs,
    cluster_blocks,
)

__all__ = [
    "MAX_CANDIDATES",
    "SURE_SIMILARITY",
    "CheckedPairs",
    "Histogram",
    "PairSimilarities",
    "VerifiedClusterResult",
    "cluster_verified",
    "explain",
    "histograms",
]


def cluster_verified(
    hashes: np.ndarray,
    thumbnails: np.ndarray,
    *,
    threshold: int,
    min_similarity: float | None = None,
    changes: str = "global",
    mode: str = "global",
    keep: str = "first",
    quality: np.ndarray | None = None,
    reference_mask: np.ndarray | None = None,
    sequence: np.ndarray | None = None,
    max_candidates: int = MAX_CANDIDATES,
    pairs: PairSimilarities | None = None,
    close_pairs: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifiedClusterResult:
    """Cluster near-duplicates: hash candidates, verified by aligned comparison.

    Items must be in capture order (see
    :func:`~napari_video_extract.core.dedup.ordered_images`); references
    first, each its own cluster and its kept item.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (N, W)
        Packed hashes.
    thumbnails : ndarray of uint8, shape (N, *THUMB_SHAPE)
        Verification thumbnails from the same pass
        (:func:`~napari_video_extract.core.hashing.hash_frames_and_thumbnails`,
        ``hash_files(with_thumbnails=True)``).
    threshold : int
        Candidate bound: largest hash distance in bits for a hash candidate.
    min_similarity : float, optional
        Smallest verified similarity for a duplicate; default
        :func:`~napari_video_extract.core.verify.default_min_similarity`.
    changes : {"global", "local"}, optional
        ``local`` also requires every block of the aligned pair to agree, so a
        person walking into a static scene makes a new still.
    mode : {"global", "sequential"}, optional
        ``global``: any earlier kept image can be matched; ``sequential``: the
        last kept image (and references) only.
    keep : {"first", "sharpest", "largest"}, optional
        Kept item of a cluster (quality-based policies need ``quality``).
    quality : ndarray, shape (N,) or (N, K), optional
        Higher is better.
    reference_mask : ndarray of bool, shape (N,), optional
        Items compared against but never dropped.
    sequence : ndarray of int64, shape (N,), optional
        Items with the same non-negative id, consecutive in the order, are
        neighbouring stills of one video: each is also verified against the
        kept image of the previous one's cluster. ``-1``: no neighbour.
    max_candidates : int, optional
        Hash candidates verified per item (nearest first).
    pairs : PairSimilarities, optional
        Similarities verified by earlier clusterings of the same hashes and
        thumbnails (any threshold or mode, same ``changes``): looked up
        instead of verified again, and the new ones added. The result is the
        same as without it.
    close_pairs : ClosePairs, optional
        The pairs of these hashes within a bound
        (:class:`~napari_video_extract.core.close_pairs.ClosePairs`): in
        global mode without references, at a threshold within the bound, a
        representative with no later item within it skips the search for
        the later items it is a candidate of (same result).
    progress : callable(done, total), optional
        Called after each block of items.

    Returns
    -------
    VerifiedClusterResult

    Raises
    ------
    ValueError
        Bad shapes or settings.
    """
    hashes, reference_mask, quality, sequence = check_verified_inputs(
        hashes, thumbnails, mode, keep, threshold, reference_mask, quality, sequence
    )
    return cluster_blocks(
        hashes, thumbnails, reference_mask, quality, sequence, None, threshold=threshold,
        min_similarity=min_similarity, changes=changes, mode=mode, keep=keep,
        max_candidates=max_candidates, pairs=pairs, close_pairs=close_pairs, progress=progress,
    )  # fmt: skip

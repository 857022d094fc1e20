"""The kept item of each cluster: the keep policies, chain-free.

:func:`~napari_video_extract.core.clustering.cluster_hashes` and
:func:`~napari_video_extract.core.matching.cluster_verified` keep the first
item of each cluster, or with ``keep="sharpest"``/``"largest"`` the member
of best quality that is compatible with every other member
(:func:`choose_keepers`); :func:`keeper_arrays` turns the kept item of each
cluster into the per-item arrays of a result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_video_extract.core.hashing import hamming_bits

__all__ = ["MAX_KEEPER_TRIES", "choose_keepers", "keeper_arrays"]


def keeper_arrays(
    hashes: np.ndarray, cluster: np.ndarray, kept_of_cluster: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item: kept flag, its cluster's kept item, its hash distance to that item.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (N, W)
    cluster : ndarray of int, shape (N,)
        Cluster number of each item.
    kept_of_cluster : ndarray of int
        The kept item of each cluster.
    """
    n = len(cluster)
    kept = np.zeros(n, dtype=bool)
    kept[kept_of_cluster] = True
    kept_index = kept_of_cluster[cluster] if n else np.zeros(0, dtype=np.int64)
    distance = (
        hamming_bits(hashes, hashes[kept_index]) if n else np.zeros(0, dtype=np.int64)
    ).astype(np.int64)
    return kept, kept_index, distance


#: Candidates tried per cluster by :func:`choose_keepers` before it falls back
#: to the cluster's first image (bounds the work on huge clusters).
MAX_KEEPER_TRIES = 16


def choose_keepers(
    cluster: np.ndarray,
    rep_items: np.ndarray,
    order: np.ndarray,
    quality: np.ndarray,
    reference_mask: np.ndarray,
    compatible: Callable[[int, np.ndarray], bool],
    *,
    max_tries: int = MAX_KEEPER_TRIES,
) -> np.ndarray:
    """Kept item of each cluster for a quality-based keep policy, chain-free.

    Clustering compares every item with its cluster's first item (the
    representative), so a member of best quality may be up to twice the
    bound away from another member. Here the kept item of a cluster is the
    member of highest ``quality`` (ties: earliest in ``order``) that is
    ``compatible`` with every other member; the representative always is,
    so it is the fallback (also after ``max_tries`` failed candidates).
    A cluster holding a reference keeps the reference.

    Parameters
    ----------
    cluster : ndarray of int64, shape (N,)
        Cluster id per item.
    rep_items : ndarray of int64, shape (n_clusters,)
        Representative item of each cluster.
    order : ndarray of int64, shape (N,)
        Processing order (references first).
    quality : ndarray of float, shape (N, K)
        Higher is better, columns compared in order.
    reference_mask : ndarray of bool, shape (N,)
        Reference items.
    compatible : callable(candidate, members) -> bool
        Whether ``candidate`` may be the kept item of ``members`` (an array
        of item indices, the candidate excluded).
    max_tries : int, optional
        Candidates tried per cluster before the representative.

    Returns
    -------
    ndarray of int64, shape (n_clusters,)
        Kept item per cluster.
    """
    n = len(cluster)
    kept_of_cluster = np.asarray(rep_items, dtype=np.int64).copy()
    if n == 0:
        return kept_of_cluster
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    keys = [position] + [-quality[:, k] for k in range(quality.shape[1] - 1, -1, -1)]
    ranked = np.lexsort([*keys, cluster])  # by cluster, then best quality first
    starts = np.flatnonzero(np.r_[True, cluster[ranked][1:] != cluster[ranked][:-1]])
    ends = np.r_[starts[1:], n]
    ref_clusters = set(cluster[reference_mask].tolist())
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        if hi - lo < 2:
            continue
        members = ranked[lo:hi]
        c = int(cluster[members[0]])
        rep = int(rep_items[c])
        if c in ref_clusters:
            continue  # a reference is never dropped
        for tries, candidate in enumerate(members.tolist()):
            if candidate == rep or tries >= max_tries:
                break
            others = members[members != candidate]
            if compatible(candidate, others):
                kept_of_cluster[c] = candidate
                break
    return kept_of_cluster

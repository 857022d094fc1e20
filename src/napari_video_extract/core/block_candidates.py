"""Hash candidates of a block of items.

:func:`~napari_video_extract.core.matching.cluster_verified` places items a
block at a time. The hash distances of a block to the representatives known
when it starts are computed at once (:func:`distances`, or from the close
pairs: :func:`known_from_pairs`); each item's candidates are then the nearest
of those within the bound plus the representatives created since inside the
block (:func:`hash_candidates`, the per-item rule). The decisions that known
similarities settle for a whole block are in
:mod:`~napari_video_extract.core.settled_block`, which takes the ``k``
nearest candidates per row from here.
"""

from __future__ import annotations

import numpy as np

from napari_video_extract.core.clustering import _small_distances

__all__ = ["distances", "hash_candidates", "known_from_pairs"]

_PAIR_COST = 4  # distances computed in the time a close pair is gathered


def distances(queries: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Hash distances ``(len(queries), len(targets))`` as uint16."""
    out = np.zeros((len(queries), len(targets)), dtype=np.uint16)
    if len(targets) == 0 or len(queries) == 0:
        return out
    step = max(1, (1 << 16) // len(queries))
    for lo in range(0, len(targets), step):
        out[:, lo : lo + step] = _small_distances(
            queries[:, None, :], targets[None, lo : lo + step, :]
        )
    return out


def known_from_pairs(
    close_pairs,
    lo: int,
    hi: int,
    threshold: int,
    cluster: np.ndarray,
    rep_items: np.ndarray,
    rep_words: np.ndarray,
    hashes: np.ndarray,
):
    """The representatives before item ``lo`` within ``threshold`` of items ``lo..hi-1``.

    What :func:`distances` finds by comparing the block (``hashes``) with
    every representative (``rep_words``), taken from the close pairs
    (:meth:`~napari_video_extract.core.close_pairs.ClosePairs.earlier_of`) in
    time proportional to the block's pairs when that is cheaper: the items
    are in order and none is a reference, so the items before ``lo`` are
    placed (``cluster``) and a representative is the kept item of its
    cluster (``rep_items``).

    Returns
    -------
    candidates : tuple of ndarray, or ndarray
        ``(rows, clusters, distances)`` of each pair, rows ascending, then
        nearest first, then the older cluster first (``nearest_first`` of
        :func:`~napari_video_extract.core.settled_block.settle`); or, when
        comparing is cheaper, the distance matrix.
    inside : ndarray of bool, shape (hi - lo,), or None
        Rows within ``threshold`` of another row of the block: the others'
        candidates are final at the block's start, and a new cluster there
        is no other row's candidate (see
        :meth:`~napari_video_extract.core.settled_block.SettledBlock.lone_new`).
        None with the distance matrix.
    """
    # A pair gathered costs about what several distances do.
    if close_pairs.count_earlier(lo, hi, threshold) * _PAIR_COST > (hi - lo) * len(rep_words):
        return distances(hashes, rep_words), None
    item, earlier, d = close_pairs.earlier_of(lo, hi, threshold)
    placed = earlier < lo
    inside = np.zeros(hi - lo, dtype=bool)  # a row with a neighbour inside the block
    inside[item[~placed] - lo] = True
    inside[earlier[~placed] - lo] = True
    item, earlier, d = item[placed], earlier[placed], d[placed]
    c = cluster[earlier]
    rep = rep_items[c] == earlier
    return (item[rep] - lo, c[rep], d[rep]), inside


def hash_candidates(cols, dists, n_known, words, fresh_words, threshold, k):
    """Up to ``k`` nearest representatives within ``threshold``: [(cluster, distance)].

    ``cols``/``dists``: the representatives known when the block started that
    are within the bound, and their distances; ``fresh_words`` the
    representatives created since (their ids follow ``n_known``). Nearest
    first, ties to the older cluster.
    """
    if len(cols) > 4 * k:  # the k nearest of many, in numpy
        keep = np.lexsort((cols, dists))[:k]
        cols, dists = cols[keep], dists[keep]
    found = list(zip(dists.tolist(), cols.tolist(), strict=True))
    if len(fresh_words):
        fresh = _small_distances(fresh_words, words[None, :])
        near = np.flatnonzero(fresh <= threshold)
        found += [(int(fresh[c]), n_known + int(c)) for c in near.tolist()]
    if len(found) > 1:
        found.sort()
    return [(c, d) for d, c in found[:k]]


def _nearest_of_pairs(close_rows, close_cols, close_d, n_rows, threshold, k, nearest_first):
    """The ``k`` nearest clusters of each row (``-1`` past the last) and their distances."""
    if not nearest_first:
        # Nearest first, ties to the older cluster: a stable sort by (row,
        # distance) keeps the clusters ascending within each distance.
        key = close_rows.astype(np.int64) * (threshold + 1) + close_d
        by = np.argsort(key, kind="stable")
        close_rows, close_cols, close_d = close_rows[by], close_cols[by], close_d[by]
    rows = close_rows
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_rows))[rows]
    top = rank < k
    rows, rank = rows[top], rank[top]
    cols = np.full((n_rows, k), -1, dtype=np.int64)
    dists = np.zeros((n_rows, k), dtype=np.int64)
    cols[rows, rank] = close_cols[top]
    dists[rows, rank] = close_d[top]
    return cols, dists


def _nearest_of_matrix(d: np.ndarray, threshold: int, k: int):
    """:func:`_nearest_of_pairs` from the distance matrix: ``k`` smallest (distance, cluster)."""
    n_cols = d.shape[1]
    # One key per (row, cluster), ordered as the candidates are; a few minimum
    # passes cost less than sorting every pair within the bound.
    far = (threshold + 1) * n_cols  # the key of every distance past the bound
    key = d.astype(np.int64)
    key *= n_cols
    key += np.arange(n_cols)
    np.minimum(key, far, out=key)
    return _smallest(key, far, n_cols, k)


def _smallest(key: np.ndarray, far: int, width: int, k: int):
    """Per row, the ``k`` smallest keys below ``far`` as (cluster, distance) tables.

    A key is ``distance * width + cluster``, unique within its row; ``-1``
    past the last.
    """
    n_rows = len(key)
    cols = np.full((n_rows, k), -1, dtype=np.int64)
    dists = np.zeros((n_rows, k), dtype=np.int64)
    rows = np.arange(n_rows)
    for j in range(k if key.size else 0):
        best = key.min(axis=1)
        found = best < far
        if not found.all():  # no candidate left there: done with those rows
            rows, key, best = rows[found], key[found], best[found]
            if not len(rows):
                break
        cols[rows, j] = best % width
        dists[rows, j] = best // width
        if j + 1 < k:
            key[key == best[:, None]] = far
    return cols, dists

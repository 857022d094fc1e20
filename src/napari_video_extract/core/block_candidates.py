"""Hash candidates of a block of items, and the decisions known similarities settle.

:func:`~napari_video_extract.core.matching.cluster_verified` places items a
block at a time. The hash distances of a block to the representatives known
when it starts are computed at once (:func:`distances`); each item's
candidates are then the nearest of those within the bound plus the
representatives created since inside the block (:func:`hash_candidates`, the
per-item rule).

When the similarities of the nearest known candidates are already known (the
napari review re-clustering at a new threshold with a filled
:class:`~napari_video_extract.core.pair_memo.PairSimilarities`), most items'
decisions follow from them alone, for the whole block in numpy
(:func:`settle`): the nearest ``k`` known candidates (ties: the older
cluster), checked nearest first up to the first one of at least ``sure``,
joined to the most similar one of at least ``min_similarity`` (ties: the
older cluster). What numpy cannot see, the per-item loop decides: an item
with a similarity not known yet, one that starts a cluster, one a
representative created inside the block may be a candidate of, and one whose
time neighbour (or the last kept image, in sequential mode) would be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_video_extract.core.clustering import _small_distances

__all__ = ["SettledBlock", "distances", "hash_candidates", "settle"]


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


@dataclass
class SettledBlock:
    """The decisions of a block's items from their known candidates alone.

    Attributes
    ----------
    cols, dists, sims : ndarray, shape (B, k)
        Per item, the nearest known candidates (cluster ids, ``-1`` past the
        last), their hash distances and their known similarities (NaN: not
        known).
    n_checked : ndarray of int64, shape (B,)
        Candidates checked (the first ``n_checked`` columns).
    sure : ndarray of bool, shape (B,)
        Checking stopped at a candidate of at least ``sure``: nothing after
        the known candidates would be checked.
    cluster : ndarray of int64, shape (B,)
        The cluster joined (``-1``: none, a new cluster).
    similarity : ndarray of float64, shape (B,)
        Similarity to that cluster's kept image.
    open : ndarray of bool, shape (B,)
        Not settled here: a similarity among the checked ones is not known,
        or no candidate accepts the item (a new cluster is the per-item
        loop's to make).
    """

    cols: np.ndarray
    dists: np.ndarray
    sims: np.ndarray
    n_checked: np.ndarray
    sure: np.ndarray
    cluster: np.ndarray
    similarity: np.ndarray
    open: np.ndarray


def settle(
    close_rows: np.ndarray,
    close_cols: np.ndarray,
    close_d: np.ndarray,
    items: np.ndarray,
    rep_items: np.ndarray,
    known: Callable[[tuple[int, int], float], float],
    *,
    threshold: int,
    k: int,
    min_similarity: float,
    sure: float,
) -> SettledBlock:
    """Decide the block's items from their nearest known candidates, all at once.

    Parameters
    ----------
    close_rows, close_cols, close_d : ndarray
        Every (block row, known cluster, distance) within the bound, rows
        ascending and clusters ascending within a row (``np.nonzero`` order).
    items : ndarray of int64, shape (B,)
        The block's items.
    rep_items : ndarray of int64
        Kept item of each known cluster.
    known : callable((kept, item), default) -> float
        Similarity lookup (``dict.get`` of the pair memo).
    threshold : int
        The candidate bound (distances are at most this).
    k : int
        Hash candidates per item.
    min_similarity, sure : float
        Smallest similarity of a duplicate; similarity that stops checking.

    Returns
    -------
    SettledBlock
    """
    n_rows = len(items)
    k = max(int(k), 1)
    # Nearest first, ties to the older cluster: a stable sort by (row, distance)
    # keeps the clusters ascending within each distance.
    key = close_rows.astype(np.int64) * (int(threshold) + 1) + close_d
    by = np.argsort(key, kind="stable")
    rows, cols_flat, d_flat = close_rows[by], close_cols[by], close_d[by]
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_rows))[rows]
    top = rank < k
    rows, cols_flat, d_flat, rank = rows[top], cols_flat[top], d_flat[top], rank[top]
    cols = np.full((n_rows, k), -1, dtype=np.int64)
    dists = np.zeros((n_rows, k), dtype=np.int64)
    sims = np.full((n_rows, k), np.nan)
    cols[rows, rank] = cols_flat
    dists[rows, rank] = d_flat
    nan = float("nan")
    pairs = zip(rep_items[cols_flat].tolist(), items[rows].tolist(), strict=True)
    sims[rows, rank] = np.fromiter((known(p, nan) for p in pairs), np.float64, len(rows))

    valid = cols >= 0
    hit = valid & (sims >= sure)
    stopped = hit.any(axis=1)
    last = np.where(stopped, hit.argmax(axis=1), k - 1)
    checked = valid & (np.arange(k)[None, :] <= last[:, None])
    unknown = (checked & np.isnan(sims)).any(axis=1)
    accepted = checked & (sims >= min_similarity)
    best = np.where(accepted, sims, -np.inf).max(axis=1)
    tie = accepted & (sims == best[:, None])
    cluster = np.where(tie, cols, np.iinfo(np.int64).max).min(axis=1)
    new = ~accepted.any(axis=1)
    cluster[new] = -1
    return SettledBlock(
        cols=cols,
        dists=dists,
        sims=sims,
        n_checked=checked.sum(axis=1),
        sure=stopped,
        cluster=cluster,
        similarity=best,
        open=unknown | new,
    )

"""A verified global clustering from known similarities, a window of items at a time, in numpy.

When every similarity a global clustering checks is in the pair memo (the
napari review re-clustering at a new slider threshold), the per-item rule of
:func:`~napari_video_extract.core.matching.cluster_verified` -- each item's
candidates are the ``k`` nearest earlier representatives within the
threshold (ties: the older one), checked nearest first up to the first of at
least ``sure``, the most similar of at least ``min_similarity`` joined (ties:
the older one), else the item is a representative -- only needs to know
which earlier items are representatives.

:func:`cluster_from_known` places the items a window at a time, the windows
before it final. Inside a window it guesses which rows are representatives
(first: none), decides every row from the guess, and guesses again with the
rows that started a cluster, until a guess gives itself back. A row's
decision depends only on the rows before it, so the rule's answer is the
only such fixed point, and where two guesses in a row agree on the first
rows, those rows (and the first row they disagree on) are the rule's: after
:data:`_ROUNDS` guesses the window ends there and the next one starts, and
the next windows are smaller (long chains of decisions settle in fewer
guesses), growing again as they settle (the first one is small too: with
no representative before it, each guess there compares many rows). After
the first guess only the rows within the threshold of a row whose guess
changed are decided again.

A window's candidates come from the close pairs
(:class:`~napari_video_extract.core.close_pairs.ClosePairs`, at a threshold
within their bound) or from hash distances, whichever costs less. The items
from the first one that checks a similarity not known on are left to the
per-item loop (which verifies it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_video_extract.core.block_candidates import _smallest, distances
from napari_video_extract.core.settled_block import checked_choice

__all__ = ["KnownClustering", "cluster_from_known"]

_WINDOW = 1024  # rows placed together at most...
_MIN_WINDOW = 32  # ... and at least (unless at the end)
_FIRST_WINDOW = 128  # the first (no representative before it: every row may start one)
_ROUNDS = 8  # guesses per window before it ends at the rows they agree on
_PAIR_COST = 4  # hash distances computed in the time a close pair is gathered


@dataclass
class KnownClustering:
    """The rule's answer: clusters, representatives, similarities, checked pairs.

    Attributes
    ----------
    cluster : ndarray of int64, shape (placed,)
        Cluster of each item placed, numbered in order of creation.
    rep_items : ndarray of int64
        Representative (kept item) of each cluster.
    joined : ndarray of float64, shape (placed,)
        Similarity of each member to its representative (1.0 for those).
    rows : ndarray of float64, shape (M, 4)
        ``(item, kept, distance, similarity)`` of every pair checked, in the
        order the per-item rule checks them.

    Only the first ``placed = len(cluster)`` items are placed (the rest is
    the per-item loop's).
    """

    cluster: np.ndarray
    rep_items: np.ndarray
    joined: np.ndarray
    rows: np.ndarray

    @property
    def placed(self) -> int:
        """Items placed (the first ones)."""
        return len(self.cluster)


def _decide(cols, dists, rows, lookup, min_similarity, sure):
    """Per row: similarities, checked columns, joined representative (-1: none), best one."""
    k = cols.shape[1]
    valid = cols >= 0
    sims = np.full(cols.shape, np.nan)
    stopped = np.zeros(len(cols), dtype=bool)
    for j in range(k):  # looked up only where checking gets to them
        need = np.flatnonzero(valid[:, j] & ~stopped)
        if not len(need):
            break
        sims[need, j] = lookup(cols[need, j], rows[need])
        stopped[need] = sims[need, j] >= sure
    checked, best, joined = checked_choice(cols, sims, stopped, min_similarity, sure)
    return sims, checked, joined, best


def _top_k(owner, key, n_rows, k, n):
    """Per row, the ``k`` smallest ``key = distance * n + item``: (items, distances), -1 past."""
    cols = np.full((n_rows, k), -1, dtype=np.int64)
    dists = np.zeros((n_rows, k), dtype=np.int64)
    if len(owner):
        span = int(key.max()) + 1
        both = np.sort(owner * span + key)  # one key: cheaper than a lexsort
        owner, key = np.divmod(both, span)
        rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
        top = rank < k
        owner, rank, key = owner[top], rank[top], key[top]
        cols[owner, rank] = key % n
        dists[owner, rank] = key // n
    return cols, dists


def _base_from_distances(hashes, lo, hi, reps, threshold, k, n, lookup, sure):
    """The ``k`` nearest of ``reps`` within ``threshold`` of rows ``lo..hi-1``: (row, key).

    ``key = distance * n + representative``, by row, nearest first. A row's
    list ends at its first candidate of at least ``sure`` (nothing after it
    is ever checked, whatever the window's own representatives).
    """
    empty = np.zeros(0, dtype=np.int64)
    if not len(reps):
        return empty, empty
    d = distances(hashes[lo:hi], hashes[reps])
    rows = np.arange(hi - lo)
    past = np.iinfo(d.dtype).max
    owners, keys = [], []
    for j in range(k):
        # The first smallest: the nearest, ties to the older representative.
        col = d.argmin(axis=1)
        near = d[np.arange(len(rows)), col].astype(np.int64)
        found = near <= threshold
        rows, d, col, near = rows[found], d[found], col[found], near[found]
        if not len(rows):
            break
        owners.append(rows)
        keys.append(near * n + reps[col])
        if j + 1 == k:
            break
        more = ~(lookup(reps[col], rows + lo) >= sure)
        d[np.arange(len(rows)), col] = past
        rows, d = rows[more], d[more]
    if not owners:
        return empty, empty
    owner, key = np.concatenate(owners), np.concatenate(keys)
    order = np.argsort(owner, kind="stable")  # by row, nearest first (the passes' order)
    return owner[order], key[order]


class _Window:
    """Rows ``lo..hi-1``: candidates from the final representatives before, and inside."""

    def __init__(self, hashes, lo, hi, *, threshold, k, is_rep, reps, close_pairs, lookup, sure):
        n = len(hashes)
        self.lo, self.hi, self.k, self.n, self.threshold = lo, hi, k, n, threshold
        size = hi - lo
        self.dense = None  # the window's hashes (distances inside), or the close pairs inside
        use_pairs = close_pairs is not None and (
            close_pairs.count_earlier(lo, hi, threshold) * _PAIR_COST <= size * (len(reps) + size)
        )
        if use_pairs:
            item, earlier, d = close_pairs.earlier_of(lo, hi, threshold)
            inside = earlier >= lo
            before = ~inside & is_rep[earlier]
            self.base_owner, self.base_key = item[before] - lo, d[before] * n + earlier[before]
            self.r, self.j, self.d = item[inside] - lo, earlier[inside] - lo, d[inside]
            # Rows within the threshold of each row (later ones), to redo after a change.
            order = np.argsort(self.j, kind="stable")
            self.by_j_later = self.r[order]
            self.by_j_starts = np.searchsorted(self.j[order], np.arange(size + 1))
        else:
            self.base_owner, self.base_key = _base_from_distances(
                hashes, lo, hi, reps, threshold, k, n, lookup, sure
            )
            self.dense = hashes[lo:hi]  # distances inside are computed when needed
            # The base lists as a table of keys (far past the last), for the dense passes.
            self.far = (threshold + 1) * n
            table = np.full((size, k), self.far, dtype=np.int64)
            owner = self.base_owner
            rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
            table[owner, rank] = self.base_key
            self.table = table

    def candidates(self, rows, guess):
        """The ``k`` nearest representatives of ``rows`` (ascending), ``guess`` the ones inside."""
        size = self.hi - self.lo
        slot = np.full(size, -1, dtype=np.int64)
        slot[rows] = np.arange(len(rows))
        b = slot[self.base_owner] >= 0
        owner, key = [slot[self.base_owner[b]]], [self.base_key[b]]
        if self.dense is None:
            i = (slot[self.r] >= 0) & guess[self.j]
            owner.append(slot[self.r[i]])
            key.append(self.d[i] * self.n + self.j[i] + self.lo)
        else:
            g = np.flatnonzero(guess)
            sub = distances(self.dense[rows], self.dense[g]).astype(np.int64)
            inner = np.where(
                (sub <= self.threshold) & (g[None, :] < rows[:, None]),
                sub * self.n + (g + self.lo)[None, :],
                self.far,
            )
            key = np.concatenate([self.table[rows], inner], axis=1)
            return _smallest(key, self.far, self.n, self.k)
        return _top_k(np.concatenate(owner), np.concatenate(key), len(rows), self.k, self.n)

    def later_of(self, rows):
        """Rows after ``rows`` within the threshold of one of them."""
        size = self.hi - self.lo
        if self.dense is not None:
            near = (distances(self.dense, self.dense[rows]) <= self.threshold) & (
                np.arange(size)[:, None] > rows[None, :]
            )
            return np.flatnonzero(near.any(axis=1))
        lo, hi = self.by_j_starts[rows], self.by_j_starts[rows + 1]
        counts = hi - lo
        at = np.arange(int(counts.sum())) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
        mark = np.zeros(size, dtype=bool)
        mark[self.by_j_later[at]] = True
        return np.flatnonzero(mark)


def cluster_from_known(
    hashes: np.ndarray,
    *,
    threshold: int,
    k: int,
    min_similarity: float,
    sure: float,
    lookup: Callable[[np.ndarray, np.ndarray], np.ndarray],
    close_pairs=None,
) -> KnownClustering | None:
    """The global clustering of the first items in order (no references, no time neighbours).

    Parameters
    ----------
    hashes : ndarray of uint64, shape (N, W)
    threshold, k : int
        Candidate bound in bits; candidates per item.
    min_similarity, sure : float
        Smallest similarity of a duplicate; similarity that stops checking.
    lookup : callable(kept, items) -> ndarray
        Known similarities of pairs (NaN: not known), e.g.
        :meth:`~napari_video_extract.core.pair_memo.PairSimilarities.lookup`.
    close_pairs : ClosePairs, optional
        The close pairs of these very hashes; used at a threshold within
        their bound.

    Returns
    -------
    KnownClustering or None
        The first :attr:`~KnownClustering.placed` items: all, or up to the
        first that checks a pair not known; None when no item is placed.
    """
    n = len(hashes)
    threshold, k = int(threshold), max(int(k), 1)
    if close_pairs is not None and threshold > close_pairs.bound:
        close_pairs = None
    cols = np.full((n, k), -1, dtype=np.int64)
    dists = np.zeros((n, k), dtype=np.int64)
    sims = np.full((n, k), np.nan)
    checked = np.zeros((n, k), dtype=bool)
    joined = np.full(n, -1, dtype=np.int64)
    best = np.full(n, -np.inf)
    is_rep = np.zeros(n, dtype=bool)
    reps = np.zeros(0, dtype=np.int64)
    lo = 0
    window = min(_FIRST_WINDOW, _WINDOW)
    while lo < n:
        hi = min(n, lo + window)
        win = _Window(hashes, lo, hi, threshold=threshold, k=k, is_rep=is_rep, reps=reps,
                      close_pairs=close_pairs, lookup=lookup, sure=sure)  # fmt: skip
        size = hi - lo
        guess = np.zeros(size, dtype=bool)  # the first guess: no representative inside
        rows = np.arange(size)
        done = size
        for round_ in range(_ROUNDS):
            c, d = win.candidates(rows, guess)
            at = rows + lo
            s, ch, jo, be = _decide(c, d, at, lookup, min_similarity, sure)
            cols[at], dists[at], sims[at], checked[at], joined[at], best[at] = c, d, s, ch, jo, be
            new = joined[lo:hi] < 0
            changed = np.flatnonzero(new != guess)
            guess = new
            if not len(changed):
                break
            if round_ == _ROUNDS - 1:
                done = int(changed[0]) + 1  # the rows the guesses agree on, and that one
                break
            rows = win.later_of(changed)
            if not len(rows):
                break
        # Long chains of decisions settle in smaller windows (fewer rounds each).
        window = min(_WINDOW, max(_MIN_WINDOW, 2 * done if done < size else 2 * window))
        # A row that checked a pair not known, and every later one, is the loop's.
        unknown = np.flatnonzero(
            (checked[lo : lo + done] & np.isnan(sims[lo : lo + done])).any(axis=1)
        )
        if len(unknown):
            done = int(unknown[0])
        is_rep[lo : lo + done] = guess[:done]
        reps = np.concatenate([reps, lo + np.flatnonzero(guess[:done])])
        lo += done
        if len(unknown):
            break
    placed = lo
    if not placed:
        return None
    is_rep, joined, best = is_rep[:placed], joined[:placed], best[:placed]
    cluster_of = np.cumsum(is_rep) - 1
    cluster = np.where(is_rep, cluster_of, cluster_of[np.maximum(joined, 0)])
    item, col = np.nonzero(checked[:placed])
    out = np.column_stack([item, cols[item, col], dists[item, col], sims[item, col]])
    return KnownClustering(
        cluster.astype(np.int64), reps, np.where(is_rep, 1.0, best), out.astype(np.float64)
    )

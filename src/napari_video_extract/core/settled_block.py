"""The decisions known similarities settle for a block of items, in numpy.

When the similarities of the nearest known candidates are already known (the
napari review re-clustering at a new threshold with a filled
:class:`~napari_video_extract.core.pair_memo.PairSimilarities`), most items'
decisions in
:func:`~napari_video_extract.core.matching.cluster_verified` follow from
them alone, for the whole block in numpy (:func:`settle`): the nearest ``k``
known candidates (ties: the older cluster; found by
:mod:`~napari_video_extract.core.block_candidates`), checked nearest first up
to the first one of at least ``sure``, joined to the most similar one of at
least ``min_similarity`` (ties: the older cluster). What numpy cannot see,
the per-item loop decides: an item with a similarity not known yet, one that
starts a cluster, one a representative created inside the block may be a
candidate of, and one whose time neighbour (or the last kept image, in
sequential mode) would be checked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_video_extract.core.block_candidates import (
    _nearest_of_matrix,
    _nearest_of_pairs,
    _smallest,
    distances,
)

__all__ = ["SettledBlock", "checked_choice", "settle"]

_NONE = np.iinfo(np.int64).max  # no cluster (above every id)


def checked_choice(
    cols: np.ndarray, sims: np.ndarray, stopped: np.ndarray, min_similarity: float, sure: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-still rule, once its candidates' similarities are looked up.

    Row by row: the candidates ``cols`` (``-1`` past the last) are checked in
    order up to the first of at least ``sure`` (``stopped``: one was found;
    ``sims`` NaN where not looked up), and the still joins the most similar
    checked one of at least ``min_similarity`` (ties: the smaller id, the
    older cluster). Returns the checked mask, the best similarity (``-inf``:
    none accepted) and the joined candidate (``-1``: none).
    """
    k = cols.shape[1]
    last = np.where(stopped, (sims >= sure).argmax(axis=1), k - 1)  # NaN: False
    checked = (cols >= 0) & (np.arange(k)[None, :] <= last[:, None])
    accepted = checked & (sims >= min_similarity)
    best = np.where(accepted, sims, -np.inf).max(axis=1)
    joined = np.where(accepted & (sims == best[:, None]), cols, _NONE).min(axis=1)
    joined[joined == _NONE] = -1
    return checked, best, joined


_FEW = 12  # rows decided one at a time in Python rather than with numpy
_ROUNDS = 12  # guesses of SettledBlock.place_all before the per-item loop takes over


class SettledBlock:
    """The decisions of a block's items from their nearest candidates alone.

    Made by :func:`settle`; a representative created inside the block is
    added to the candidates of the later items with :meth:`add`.

    Attributes
    ----------
    cols, dists, sims : ndarray, shape (B, k)
        Per item, the nearest candidates (cluster ids, ``-1`` past the last;
        nearest first, ties to the older cluster), their hash distances and
        their known similarities (NaN: not known).
    n_checked : ndarray of int64, shape (B,)
        Candidates checked (the first ``n_checked`` columns).
    sure : ndarray of bool, shape (B,)
        Checking stopped at a candidate of at least ``sure``: nothing after
        these candidates would be checked.
    cluster : ndarray of int64, shape (B,)
        The cluster joined (``-1``: none, a new cluster).
    similarity : ndarray of float64, shape (B,)
        Similarity to that cluster's kept image.
    open : ndarray of bool, shape (B,)
        Not settled here: a similarity among the checked ones is not known
        (``unknown``), or no candidate accepts the item (a new cluster is
        the per-item loop's to make, or see :meth:`lone_new`).
    """

    def __init__(
        self,
        cols: np.ndarray,
        dists: np.ndarray,
        items: np.ndarray,
        rep_items: np.ndarray,
        known: Callable[[tuple[int, int], float], float],
        *,
        min_similarity: float,
        sure: float,
        known_many: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.known_many = known_many
        self.cols, self.dists = cols, dists
        self.items, self.rep_items, self.known = items, rep_items, known
        self.min_similarity, self.sure_similarity = min_similarity, sure
        n_rows = len(cols)
        # Similarities are looked up only where checking gets to them.
        self.sims = np.full(cols.shape, np.nan)
        self.looked = np.zeros(cols.shape, dtype=bool)
        self.n_checked = np.zeros(n_rows, dtype=np.int64)
        self.sure = np.zeros(n_rows, dtype=bool)
        self.cluster = np.full(n_rows, -1, dtype=np.int64)
        self.similarity = np.full(n_rows, -np.inf)
        self.open = np.ones(n_rows, dtype=bool)
        self.unknown = np.zeros(n_rows, dtype=bool)
        self._decide(np.arange(n_rows))

    def _decide(self, rows: np.ndarray) -> None:
        cols, sims, looked = self.cols[rows], self.sims[rows], self.looked[rows]
        k = cols.shape[1]
        valid = cols >= 0
        stopped = np.zeros(len(rows), dtype=bool)
        nan = float("nan")
        for j in range(k):
            need = np.flatnonzero(valid[:, j] & ~stopped & ~looked[:, j])
            if len(need):
                kept = self.rep_items[cols[need, j]]
                if self.known_many is not None:
                    sims[need, j] = self.known_many(kept, self.items[rows[need]])
                else:
                    pairs = zip(kept.tolist(), self.items[rows[need]].tolist(), strict=True)
                    sims[need, j] = [self.known(p, nan) for p in pairs]
                looked[need, j] = True
            stopped |= sims[:, j] >= self.sure_similarity  # NaN past the last: False
        self.sims[rows], self.looked[rows] = sims, looked
        checked, best, cluster = checked_choice(
            cols, sims, stopped, self.min_similarity, self.sure_similarity
        )
        new = cluster < 0
        self.n_checked[rows] = checked.sum(axis=1)
        self.sure[rows] = stopped
        self.cluster[rows] = cluster
        self.similarity[rows] = best
        self.unknown[rows] = (checked & np.isnan(sims)).any(axis=1)
        self.open[rows] = new | self.unknown[rows]

    def add(self, rows: np.ndarray, cluster: int, dists: np.ndarray) -> np.ndarray:
        """Make ``cluster`` (newer than all others) a candidate of ``rows``; decide them again.

        Returns the rows whose candidates changed (where it is among the
        nearest ``k``).
        """
        k = self.cols.shape[1]
        if len(rows) > _FEW:
            # Among the nearest k: fewer than k candidates, or nearer than the k-th.
            enters = (self.cols[rows, k - 1] < 0) | (dists < self.dists[rows, k - 1])
            # Behind the candidate that stopped the checking (ties go to the
            # older cluster), it changes nothing: such rows keep their table
            # (what follows the stop is never read).
            stop = np.maximum(self.n_checked[rows] - 1, 0)
            enters &= ~(self.sure[rows] & (self.dists[rows, stop] <= dists))
            rows, dists = rows[enters], dists[enters]
        if len(rows) <= _FEW:
            return self._add_few(rows.tolist(), cluster, dists.tolist())
        # After every candidate as near or nearer: ties go to the older cluster.
        at = ((self.cols[rows] >= 0) & (self.dists[rows] <= dists[:, None])).sum(axis=1)
        j = np.arange(k)[None, :]
        src = rows[:, None], np.where(j > at[:, None], j - 1, j)  # shift right of it
        here = j == at[:, None]
        for table, value in (
            (self.cols, cluster), (self.dists, dists[:, None]),
            (self.sims, np.nan), (self.looked, False),
        ):  # fmt: skip
            table[rows] = np.where(here, value, table[src])
        # Every row left checks it (none stopped before it): decided again.
        if len(rows) > _FEW:
            self._decide(rows)
        else:
            self._decide_few(rows.tolist())
        return rows

    def _add_few(self, rows: list[int], cluster: int, dists: list[int]) -> np.ndarray:
        """:meth:`add` one row at a time (cheaper for a few rows than numpy's steps)."""
        k = self.cols.shape[1]
        changed = []
        for r, d in zip(rows, dists, strict=True):
            cols, near = self.cols[r], self.dists[r]
            col_list, near_list = cols.tolist(), near.tolist()
            if col_list[k - 1] >= 0 and d >= near_list[k - 1]:
                continue  # not among the nearest k
            # After every candidate as near or nearer: ties go to the older cluster.
            at = sum(1 for c, e in zip(col_list, near_list, strict=True) if c >= 0 and e <= d)
            if self.sure[r] and at >= self.n_checked[r]:
                continue  # behind the candidate that stopped the checking (see add)
            for table, value in ((cols, cluster), (near, d), (self.sims[r], np.nan),
                                 (self.looked[r], False)):  # fmt: skip
                table[at + 1 :] = table[at : k - 1].copy()
                table[at] = value
            changed.append(r)
        if changed:
            self._decide_few(changed)
        return np.array(changed, dtype=np.intp)

    def place_all(self, hashes: np.ndarray, n_known: int, threshold: int) -> np.ndarray | None:
        """Place every row in numpy: the rows that start a cluster, or None.

        For a block without time neighbours (global mode): each row's
        candidates are its known ones (the tables now) and the rows before it
        within ``threshold`` that start a cluster, numbered ``n_known`` on in
        order. Which rows start one is found as a fixed point: guess, place
        every row with those candidates, guess again with the rows that
        started one. A row's place depends only on the rows before it, so
        the guesses agree with the per-item rule on a longer prefix each
        round and a guess that gives itself back (every similarity it checks
        known) is that rule's answer. On
        success the tables and decisions are final (the new clusters'
        members joined them, ids as numbered). None when a similarity
        checked is not known or :data:`_ROUNDS` rounds were not enough: the
        tables are then spoilt (make the block again).

        ``hashes``: the block's hashes, shape (B, W). ``rep_items`` past
        ``n_known`` holds the guess's kept items (the clusters' own order).
        """
        fields = ("cols", "dists", "sims", "looked", "n_checked", "sure", "cluster",
                  "similarity", "open", "unknown")  # fmt: skip
        base = {name: getattr(self, name).copy() for name in fields}
        k = self.cols.shape[1]
        n_rows = len(self.cols)
        at = np.arange(n_rows)
        # The kept item of each candidate (a guess's ids change meaning).
        held = np.where(self.cols >= 0, self.rep_items[self.cols], -1)
        base_held = held.copy()
        # The stop of a row sure from its known candidates: a new candidate
        # behind it changes nothing (SettledBlock.add).
        stop = np.maximum(base["n_checked"] - 1, 0)
        stop_d, stop_c = base["dists"][at, stop], base["cols"][at, stop]
        new = self.cluster < 0
        moved = np.zeros(n_rows, dtype=bool)  # rows not on their known candidates alone
        for _ in range(_ROUNDS):
            starts = np.flatnonzero(new)
            ids = n_known + np.arange(len(starts))
            self.rep_items[ids] = self.items[starts]  # the guess, numbered in order
            width = n_known + len(starts)
            far = (threshold + 1) * width
            fresh = distances(hashes, hashes[starts]).astype(np.int64)
            fresh *= width
            fresh += ids
            fresh[(fresh >= far) | (at[:, None] <= starts[None, :])] = far
            first = fresh.min(axis=1, initial=far)
            behind = base["sure"] & (first > stop_d * width + stop_c)
            rows = np.flatnonzero((first < far) & ~behind)
            back = np.flatnonzero(moved & ~np.isin(at, rows))
            for name in fields:  # rows on their known candidates again
                getattr(self, name)[back] = base[name][back]
            held[back], moved[back] = base_held[back], False
            if len(rows):
                # Known candidates, then the new ones (younger): k smallest keys.
                cols0 = base["cols"][rows]
                known = np.where(cols0 >= 0, base["dists"][rows] * width + cols0, far)
                keys = np.concatenate([known, fresh[rows]], axis=1)
                cols, dists = _smallest(keys, far, width, k)
                items = np.where(cols >= 0, self.rep_items[cols], -1)
                kept = items == held[rows]  # the same pair there: its similarity holds
                differs = (cols != self.cols[rows]).any(axis=1) | ~kept.all(axis=1)
                changed, cols, dists = rows[differs], cols[differs], dists[differs]
                kept = kept[differs]
                self.sims[changed] = np.where(kept, self.sims[changed], np.nan)
                self.looked[changed] &= kept
                self.cols[changed], self.dists[changed] = cols, dists
                held[changed] = items[differs]
                moved[rows] = True
                if len(changed) > _FEW:
                    self._decide(changed)
                elif len(changed):
                    self._decide_few(changed.tolist())
            again = self.cluster < 0
            if np.array_equal(again, new):
                # A guess may check pairs the rule never does (not known: taken
                # as refusing); the answer's own checks must all be known.
                return None if self.unknown.any() else starts
            new = again
        return None

    def lone_new(self, inside: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Rows that start a cluster whatever the block's other rows do.

        Their known candidates all refuse them, no row of the block is
        within the bound of them (``inside`` false: no cluster made in the
        block is their candidate, theirs is no other row's), and they check
        no time neighbour (``after`` false). Only their cluster ids depend on
        the other rows (clusters are numbered in order).
        """
        return (self.cluster < 0) & ~self.unknown & ~inside & ~after

    def loose_after(self, after: np.ndarray, start: int, anchor: int) -> np.ndarray:
        """Rows from ``start`` on that the per-item loop must place (global mode, time neighbours).

        A row continuing the previous one's video (``after``) that no
        candidate made sure of also checks the previous row's cluster, unless
        that cluster is among its candidates already: then it is settled if
        the previous row is (``anchor``: the cluster of row ``start - 1``,
        placed already). Open rows are never settled.
        """
        rows = slice(start, None)
        cols, open_ = self.cols[rows], self.open[rows]
        depends = after[rows] & ~self.sure[rows]
        previous = np.concatenate([[anchor], self.cluster[rows][:-1]])
        found = (cols == previous[:, None]).any(axis=1) & (previous >= 0)
        free = ~open_ & ~depends  # settled whatever came before
        chained = ~open_ & depends & found  # settled if the previous row is
        at = np.arange(len(open_))
        last_free = np.maximum.accumulate(np.where(free, at, -1))
        last_break = np.maximum.accumulate(np.where(chained, -1, at))
        # Settled: free, or a chain back to a free row or to the anchor.
        return ~(free | (last_free >= last_break))

    def _decide_few(self, rows: list[int]) -> None:
        """:meth:`_decide` one row at a time (cheaper for a few rows than numpy's steps)."""
        nan = float("nan")
        for r in rows:
            sims, looked, item = self.sims[r], self.looked[r], int(self.items[r])
            best_c, best_s, n_checked, stopped, unknown = -1, -np.inf, 0, False, False
            for j, c in enumerate(self.cols[r].tolist()):
                if c < 0:
                    break
                if looked[j]:
                    s = float(sims[j])
                else:
                    s = self.known((int(self.rep_items[c]), item), nan)
                    sims[j], looked[j] = s, True
                n_checked += 1
                if s != s:  # NaN: not known
                    unknown = True
                elif s >= self.min_similarity and (s > best_s or (s == best_s and c < best_c)):
                    best_c, best_s = c, s
                if s >= self.sure_similarity:
                    stopped = True
                    break
            self.n_checked[r], self.sure[r] = n_checked, stopped
            self.cluster[r], self.similarity[r] = best_c, best_s
            self.open[r] = best_c < 0 or unknown
            self.unknown[r] = unknown


def settle(
    candidates: np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray],
    items: np.ndarray,
    rep_items: np.ndarray,
    known: Callable[[tuple[int, int], float], float],
    *,
    threshold: int,
    k: int,
    min_similarity: float,
    sure: float,
    known_many: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    nearest_first: bool = False,
) -> SettledBlock:
    """Decide the block's items from their nearest known candidates, all at once.

    Parameters
    ----------
    candidates : ndarray, shape (B, R), or tuple of ndarray
        The hash distances of the block to the known clusters
        (:func:`~napari_video_extract.core.block_candidates.distances`),
        or every ``(block row, known cluster, distance)`` within the bound,
        rows ascending and clusters ascending within a row (``np.nonzero``
        order; with ``nearest_first``, nearest first within a row, then
        clusters ascending:
        :func:`~napari_video_extract.core.block_candidates.known_from_pairs`).
    items : ndarray of int64, shape (B,)
        The block's items.
    rep_items : ndarray of int64
        Kept item of each cluster (also of those created later in the block:
        the array is read when a candidate is checked).
    known : callable((kept, item), default) -> float
        Similarity lookup (``dict.get`` of the pair memo).
    known_many : callable(kept, items) -> ndarray, optional
        The same for arrays of pairs (NaN: not known), e.g.
        :meth:`~napari_video_extract.core.pair_memo.PairSimilarities.lookup`.
    threshold : int
        The candidate bound (distances are at most this).
    k : int
        Hash candidates per item.
    min_similarity, sure : float
        Smallest similarity of a duplicate; similarity that stops checking.
    nearest_first : bool, optional
        See ``candidates``.

    Returns
    -------
    SettledBlock
    """
    k = max(int(k), 1)
    if isinstance(candidates, np.ndarray):
        cols, dists = _nearest_of_matrix(candidates, int(threshold), k)
    else:
        cols, dists = _nearest_of_pairs(*candidates, len(items), int(threshold), k, nearest_first)
    return SettledBlock(
        cols,
        dists,
        items,
        rep_items,
        known,
        min_similarity=min_similarity,
        sure=sure,
        known_many=known_many,
    )

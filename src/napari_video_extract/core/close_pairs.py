"""Every pair of items within a bound of each other, found once, filtered per threshold.

The napari review re-clusters the same hashes at each slider threshold. A
global clustering at ``threshold`` depends only on the pairs at most
``threshold`` bits apart, so :class:`ClosePairs` finds all pairs up to a
bound once (one pass over every pair, the same pass that gives each item's
nearest distance for the threshold histogram) and each clustering at a
threshold within the bound filters them instead of comparing every item with
every representative again (:func:`global_clusters`).

The bound is as high as a pair budget allows (:data:`MAX_PAIRS`): a threshold
above it is clustered by the brute-force search of
:func:`~napari_video_extract.core.clustering.cluster_hashes`, with the same
result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from napari_video_extract.core.clustering import _small_distances

__all__ = ["MAX_PAIRS", "ClosePairs", "global_clusters"]

#: Pairs kept at most (8 bytes each: ~16 MB); the bound is lowered to fit.
MAX_PAIRS = 1 << 21
_ROWS = 128  # items compared with a tile of others at once...
_COLS = 8192  # ...of this many (XOR buffers of ~8 MB)
# The diagonal tile (its mask, np.tri) assumes a row block fits in one column tile.
assert _COLS >= _ROWS
_SAMPLE = 1 << 16  # pairs sampled to choose the first bound
_ROUNDS = 8  # numpy rounds of the representative search before the walk in order
_FEW_PAIRS = 4  # pairs per item within the threshold up to which the rounds run


class ClosePairs:
    """All pairs of items within :attr:`bound` bits, and each item's nearest distance.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (N, W)
        Packed hashes, in capture order.
    n_bits : int
        Meaningful bits per hash (the largest distance).
    max_pairs : int, optional
        Pairs kept at most: the bound is the largest distance whose pairs
        (with all nearer ones) fit.
    progress : callable(done, total), optional
        Called before each band of items with the items compared with every
        later one so far and ``N`` (the pass takes 8-11 s at 100,000
        stills); an exception it raises (the review's ``Cancelled``) stops
        the pass.

    Attributes
    ----------
    bound : int
        Every pair at most this many bits apart is held (``-1``: none).
    later : ndarray of int32, shape (M,)
        The later item of each pair, grouped by earlier item, nearest first
        (then in order): item ``i``'s later neighbours start at
        ``starts[i]``.
    key : ndarray of int32 or int64, shape (M,)
        ``earlier * (n_bits + 1) + distance`` of each pair (sorted).
    starts : ndarray of int64, shape (N + 1,)
        Where each earlier item's pairs start.
    nearest : ndarray of int64, shape (N,)
        Distance of each item to its nearest other item (``n_bits`` when
        there is none).
    nearest_later : ndarray of int64, shape (N,)
        Distance of each item to its nearest later item (``n_bits + 1``
        when none is within the bound).
    """

    def __init__(
        self,
        hashes: np.ndarray,
        *,
        n_bits: int,
        max_pairs: int = MAX_PAIRS,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        hashes = _as_words(hashes)
        n = len(hashes)
        self._digest = _digest(hashes)
        self.n, self.n_bits = n, int(n_bits)
        width = self.n_bits + 1
        dtype = np.uint8 if self.n_bits < 255 else np.uint16
        nearest = np.full(n, self.n_bits, dtype=np.int64)
        bound = _first_bound(hashes, self.n_bits, max_pairs)
        lower = np.tri(_ROWS, _COLS, dtype=bool)  # the diagonal tile's pairs seen the other way
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        held = 0
        for lo in range(0, n, _ROWS):
            if progress is not None:
                progress(lo, n)
            hi = min(n, lo + _ROWS)
            rows = hashes[lo:hi, None, :]
            for c_lo in range(lo, n, _COLS):
                c_hi = min(n, c_lo + _COLS)
                d = _small_distances(rows, hashes[None, c_lo:c_hi, :]).astype(dtype, copy=False)
                if c_lo == lo:  # the diagonal tile: each pair once, never an item with itself
                    d = d.copy()
                    d[lower[: hi - lo, : c_hi - c_lo]] = np.iinfo(dtype).max
                np.minimum(nearest[lo:hi], d.min(axis=1), out=nearest[lo:hi])
                np.minimum(nearest[c_lo:c_hi], d.min(axis=0), out=nearest[c_lo:c_hi])
                if bound < 0:
                    continue
                flat = d.reshape(-1)
                at = np.flatnonzero(flat <= bound)
                if at.size:
                    r, c = np.divmod(at.astype(np.int32), c_hi - c_lo)
                    found.append((c + c_lo, r + lo, flat[at]))
                    held += at.size
                if held > max_pairs:
                    bound, found, held = _trim(found, max_pairs, bound)
        self.bound = bound
        self.nearest = nearest
        small = n * width < np.iinfo(np.int32).max
        if found and bound >= 0:
            # One int64 key (earlier, distance, later): sorting it is much
            # cheaper than a three-key lexsort.
            key = np.concatenate(
                [(f[1].astype(np.int64) * width + f[2]) * n + f[0] for f in found]
            )
            del found
            key.sort()
            self.later = (key % n).astype(np.int32)
            np.floor_divide(key, n, out=key)
            self.key = key.astype(np.int32) if small else key
        else:
            self.later = np.zeros(0, dtype=np.int32)
            self.key = np.zeros(0, dtype=np.int32 if small else np.int64)
        self.starts = np.searchsorted(self.key, np.arange(n + 1) * width)
        # Distance to the nearest later item (pairs nearest first); n_bits + 1
        # when none is within the bound.
        self.nearest_later = np.full(n, width, dtype=np.int64)
        has = np.flatnonzero(self.starts[1:] > self.starts[:-1])
        self.nearest_later[has] = self.key[self.starts[has]] % width
        self._items_key = np.arange(n, dtype=np.int64) * width
        # The same pairs by later item (ClosePairs.earlier_of): one more sort,
        # here, so that no re-clustering pays it.
        self._by_later = self._index_by_later()

    def __len__(self) -> int:
        return len(self.later)

    def serves(self, mode: str, n_refs: int, hashes: np.ndarray, threshold: int) -> bool:
        """Whether a clustering of ``hashes`` (``n_refs`` references) can use these pairs.

        Global mode without references, a threshold within the bound, and
        the very hashes these pairs were found in (same shape and digest:
        one hash of their bytes, about 1 ms at 100,000 stills).
        """
        if mode != "global" or n_refs or threshold > self.bound:
            return False
        hashes = _as_words(hashes)
        return len(hashes) == self.n and _digest(hashes) == self._digest

    def ends(self, threshold: int) -> np.ndarray:
        """Where each earlier item's pairs within ``threshold`` end, shape (N,).

        Raises
        ------
        ValueError
            ``threshold`` is above :attr:`bound` (not every such pair is held).
        """
        threshold = int(threshold)
        if threshold > self.bound:
            raise ValueError(f"pairs are held up to {self.bound} bits, not {threshold}")
        if threshold == self.bound:
            return self.starts[1:]
        # Needles of the keys' own type (else numpy converts all the keys on each call).
        needles = (self._items_key + threshold).astype(self.key.dtype)
        return np.searchsorted(self.key, needles, side="right")

    def earlier_of(self, lo: int, hi: int, threshold: int) -> tuple[np.ndarray, ...]:
        """The earlier neighbours within ``threshold`` of the items ``lo..hi-1``.

        Returns ``(item, earlier, distance)`` grouped by item (ascending),
        nearest first, then in order of the earlier item.

        Raises
        ------
        ValueError
            ``threshold`` is above :attr:`bound`.
        """
        threshold = int(threshold)
        if threshold > self.bound:
            raise ValueError(f"pairs are held up to {self.bound} bits, not {threshold}")
        earlier, key, starts = self._by_later
        width = self.n_bits + 1
        needles = (np.arange(lo, hi, dtype=np.int64) * width + threshold).astype(key.dtype)
        ends = np.searchsorted(key, needles, side="right")
        item, at = _ranges(np.arange(lo, hi), starts[lo:hi], ends)
        return item, earlier[at].astype(np.intp), (key[at] % width).astype(np.int64)

    def count_earlier(self, lo: int, hi: int, threshold: int) -> int:
        """How many pairs :meth:`earlier_of` gives (without gathering them)."""
        _, key, starts = self._by_later
        needles = np.arange(lo, hi, dtype=np.int64) * (self.n_bits + 1) + int(threshold)
        ends = np.searchsorted(key, needles.astype(key.dtype), side="right")
        return int((ends - starts[lo:hi]).sum())

    def _index_by_later(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Earlier item, ``later * (n_bits + 1) + distance`` and starts, by later item."""
        n, width = max(self.n, 1), self.n_bits + 1
        earlier, distance = np.divmod(self.key, width)
        key = self.later.astype(np.int64) * width
        key += distance
        key *= n
        key += earlier
        key.sort()
        earlier = (key % n).astype(np.int32)
        key //= n
        key = key.astype(self.key.dtype)
        starts = np.searchsorted(key, (np.arange(self.n + 1) * width).astype(key.dtype))
        return earlier, key, starts

    def within(self, threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """``(later, earlier)`` of every pair at most ``threshold`` apart, grouped by earlier."""
        return _pairs_within(self, self.ends(threshold))


def _as_words(hashes: np.ndarray) -> np.ndarray:
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    return hashes[:, None] if hashes.ndim == 1 else hashes


def _digest(hashes: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    """Shape and BLAKE2 digest of the hashes' bytes: equal only for the same hashes."""
    return hashes.shape, hashlib.blake2b(hashes.data, digest_size=16).digest()


def _ranges(items: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``items`` repeated over their ranges ``[lo, hi)``, and the positions in them."""
    counts = hi - lo
    owner = np.repeat(items, counts)
    first = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    return owner, first + np.arange(len(owner))


def _first_bound(hashes: np.ndarray, n_bits: int, max_pairs: int) -> int:
    """A bound whose pairs likely fit, from a sample of pairs (fewer trims on the way)."""
    n = len(hashes)
    total = n * (n - 1) // 2
    if total <= max_pairs:
        return n_bits
    rng = np.random.default_rng(0)  # the same bound on every run
    a, b = rng.integers(0, n, size=(2, _SAMPLE))
    d = _small_distances(hashes[a], hashes[b])[a != b].astype(np.int64)
    share = np.cumsum(np.bincount(d, minlength=n_bits + 1)) / max(1, len(d))
    fits = np.flatnonzero(share * total <= max_pairs)
    return int(fits[-1]) if fits.size else 0


def _trim(found, max_pairs: int, bound: int):
    """Lower the bound until the pairs found so far fit in ``max_pairs``."""
    counts = np.zeros(bound + 1, dtype=np.int64)
    for _, _, d in found:
        counts += np.bincount(d, minlength=bound + 1)[: bound + 1]
    fits = np.flatnonzero(np.cumsum(counts) <= max_pairs)
    new = int(fits[-1]) if fits.size else -1
    kept, held = [], 0
    for later, earlier, d in found:
        keep = d <= new
        if keep.any():
            kept.append((later[keep], earlier[keep], d[keep]))
            held += int(keep.sum())
    return new, kept, held


def global_clusters(pairs: ClosePairs, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Global-mode clusters of items in order, from the close pairs alone.

    The rule of :func:`~napari_video_extract.core.clustering.cluster_hashes`
    (``mode="global"``, no references): each item joins the nearest earlier
    representative within ``threshold`` (ties: the older one), else it is a
    representative itself. Whether an item is a representative depends only
    on its earlier neighbours within the threshold. With few pairs within
    the threshold, rounds in numpy settle every item whose earlier
    neighbours are settled; the items still open (all of them, with many
    pairs) are walked in order, each one no representative reached so far
    becoming one (a step per item, a slice of its pairs per representative).

    Returns
    -------
    cluster : ndarray of int64, shape (N,)
        Cluster per item (numbered in order of creation).
    rep_items : ndarray of int64
        Representative (first item) of each cluster.
    """
    n = pairs.n
    ends = pairs.ends(threshold)
    state = np.zeros(n, dtype=np.int8)  # 1 representative, -1 member, 0 not known yet
    if int((ends - pairs.starts[:-1]).sum()) <= _FEW_PAIRS * n:
        _rounds(pairs, ends, state)
    _walk(pairs, ends, state)
    rep = state == 1
    rep_items = np.flatnonzero(rep)
    cluster_of_rep = np.cumsum(rep) - 1
    cluster = cluster_of_rep.copy()
    # Each member joins its nearest representative within the threshold (ties:
    # the older one): the smallest (distance, representative) of its pairs.
    owner, at = _ranges(rep_items, pairs.starts[rep_items], ends[rep_items])
    if len(at):
        width = pairs.n_bits + 1
        member = pairs.later[at].astype(np.intp)
        best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, member, (pairs.key[at] % width).astype(np.int64) * n + owner)
        joined = np.flatnonzero(best != np.iinfo(np.int64).max)
        cluster[joined] = cluster_of_rep[best[joined] % n]
    return cluster, rep_items


def _rounds(pairs: ClosePairs, ends: np.ndarray, state: np.ndarray) -> None:
    """Settle in numpy the items whose earlier neighbours are settled, a layer at a time."""
    n = pairs.n
    e_late, e_early = _pairs_within(pairs, ends)
    has_earlier = np.zeros(n, dtype=bool)
    has_earlier[e_late] = True
    state[~has_earlier] = 1
    for _ in range(_ROUNDS):
        # Next to an earlier representative: a member.
        state[e_late[state[e_early] == 1]] = -1
        # Pairs still deciding something: both items open (an open earlier
        # item is not a member, and not a representative: its later
        # neighbours would be members now).
        keep = (state[e_late] == 0) & (state[e_early] == 0)
        e_late, e_early = e_late[keep], e_early[keep]
        open_ = state == 0
        if not open_.any():
            return
        # Every earlier neighbour a member: a representative.
        blocked = np.zeros(n, dtype=bool)
        blocked[e_late] = True
        state[open_ & ~blocked] = 1
    # The members of the last round's representatives are marked by the walk.


def _pairs_within(pairs: ClosePairs, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(later, earlier)`` of the pairs up to ``ends``."""
    earlier, at = _ranges(np.arange(pairs.n), pairs.starts[:-1], ends)
    return pairs.later[at].astype(np.intp), earlier


def _walk(pairs: ClosePairs, ends: np.ndarray, state: np.ndarray) -> None:
    """Decide the open items in order: one no representative reached is one.

    A representative marks its later neighbours within the threshold when
    the walk meets it, so the members of those decided before are marked
    first.
    """
    open_items = np.flatnonzero(state == 0)
    if not open_items.size:
        return
    member = state == -1
    later = pairs.later
    reps = np.flatnonzero(state == 1)
    member[later[_ranges(reps, pairs.starts[reps], ends[reps])[1]]] = True
    starts_list, ends_list = pairs.starts.tolist(), ends.tolist()
    for item in open_items.tolist():
        if member[item]:
            state[item] = -1
            continue
        state[item] = 1
        lo, hi = starts_list[item], ends_list[item]
        if hi > lo:
            member[later[lo:hi]] = True

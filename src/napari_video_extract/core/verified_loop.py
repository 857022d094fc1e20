"""The verified clustering's loop: blocks of items placed in capture order.

:func:`~napari_video_extract.core.matching.cluster_verified` (the rule, in
:mod:`~napari_video_extract.core.matching`'s docstring) and
:func:`~napari_video_extract.core.arriving_items.cluster_arriving` (the same
loop fed while the files are hashed) both run :func:`cluster_blocks`. Each
block of items is placed against the items before it only, so a prefix of
the items is clustered the same whatever follows it.

Module-level API
----------------
:class:`VerifiedClusterResult`
    The clusters, with each item's similarity and every pair checked.
:func:`check_verified_inputs`, :func:`cluster_blocks`
    Checked inputs -> :class:`VerifiedClusterResult`.
"""

from __future__ import annotations

import bisect
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from napari_video_extract.core.block_candidates import (
    distances,
    hash_candidates,
    known_from_pairs,
)
from napari_video_extract.core.checked_pairs import CheckedPairs, PairRecorder
from napari_video_extract.core.clustering import (
    ClusterResult,
    _small_distances,
    check_cluster_inputs,
    choose_keepers,
    keeper_arrays,
)
from napari_video_extract.core.hashing import hamming_bits
from napari_video_extract.core.known_clustering import cluster_from_known
from napari_video_extract.core.settled_block import settle
from napari_video_extract.core.verify import THUMB_SHAPE, Verifier, default_min_similarity

__all__ = [
    "MAX_CANDIDATES",
    "SURE_SIMILARITY",
    "VerifiedClusterResult",
    "check_verified_inputs",
    "cluster_blocks",
]

#: Hash candidates verified per image (nearest first).
MAX_CANDIDATES = 4
#: A candidate this similar is taken without checking the farther ones.
SURE_SIMILARITY = 0.9
_BLOCK = 128  # items whose hash distances to all kept images are computed at once
# ... when a pair memo is given: most items are settled in numpy (fewer, bigger steps).
_MEMO_BLOCK = 512


@dataclass
class VerifiedClusterResult(ClusterResult):
    """Clusters from :func:`cluster_verified`.

    Attributes
    ----------
    similarity : ndarray of float64, shape (N,)
        Verified similarity to the kept item of the item's cluster (1.0 for
        kept items); at least ``min_similarity`` for every other member.
    min_similarity : float
        Smallest similarity of a duplicate.
    changes : str
        ``"global"`` or ``"local"`` comparison.
    checked : CheckedPairs
        Every verified pair, in the order checked.

    Notes
    -----
    ``distance`` (from :class:`ClusterResult`) is the hash distance to the
    kept item; a still proposed as a time neighbour may be farther than
    ``threshold`` (the verification decided).
    """

    similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    min_similarity: float = 0.0
    changes: str = "global"
    checked: CheckedPairs | None = None


def check_verified_inputs(
    hashes, thumbnails, mode, keep, threshold, reference_mask, quality, sequence
):
    """The inputs of :func:`~napari_video_extract.core.matching.cluster_verified`, checked."""
    hashes, reference_mask, quality = check_cluster_inputs(
        hashes, mode, keep, threshold, reference_mask, quality
    )
    n = len(hashes)
    if np.ndim(thumbnails) != 3 or np.shape(thumbnails) != (n, *THUMB_SHAPE):
        raise ValueError(
            f"thumbnails must have shape ({n}, {THUMB_SHAPE[0]}, {THUMB_SHAPE[1]}), "
            f"got {np.shape(thumbnails)}"
        )
    if sequence is not None:
        sequence = np.asarray(sequence, dtype=np.int64)
        if sequence.shape != (n,):
            raise ValueError(f"sequence must have shape ({n},), got {sequence.shape}")
    return hashes, reference_mask, quality, sequence


def cluster_blocks(hashes, thumbnails, reference_mask, quality, sequence, arriving, *,
                   threshold, min_similarity, changes, mode, keep, max_candidates, pairs,
                   close_pairs, progress):  # fmt: skip
    """The body of :func:`~napari_video_extract.core.matching.cluster_verified`.

    Inputs as :func:`check_verified_inputs` gives them. With ``arriving``
    (:class:`~napari_video_extract.core.arriving_items.ArrivingItems`), each
    block is waited for as the hashing produces it; the review's pair memo
    (``pairs``) is never combined with it.
    """
    if arriving is not None and pairs is not None:
        raise ValueError("items arriving while hashed are clustered without a pair memo")
    threshold = int(threshold)
    if min_similarity is None:
        min_similarity = default_min_similarity(changes)
    min_similarity = float(min_similarity)
    if not -1.0 <= min_similarity <= 1.0:
        raise ValueError(f"min_similarity must be from -1 to 1, got {min_similarity!r}")
    n, n_words = hashes.shape
    if pairs is not None:
        pairs.check(n, changes)
    # A memory map stays one (np.asarray would hide it): the verifier lets the
    # OS drop the pages it read (Verifier.release_pages), else a 100,000-still
    # map ends up resident.
    thumbs = thumbnails if isinstance(thumbnails, np.ndarray) else np.asarray(thumbnails)
    # Its caches are bounded in bytes (Verifier's defaults: 192 MB of
    # templates, 40 MB of search sides).
    verifier = Verifier(thumbs, changes=changes)
    rec = PairRecorder(verifier, hashes, min_similarity, pairs)

    if arriving is None:
        order = np.concatenate([np.flatnonzero(reference_mask), np.flatnonzero(~reference_mask)])
        n_refs = int(reference_mask.sum())
    else:  # references arrive first
        n_refs = arriving.n_references()
        order = np.arange(n, dtype=np.int64)
    cluster = np.full(n, -1, dtype=np.int64)
    rep_items: list[int] = []
    rep_array = np.full(max(1, n), -1, dtype=np.int64)  # rep_items, for numpy
    rep_words = np.zeros((max(1, n), n_words), dtype=np.uint64)
    for item in order[:n_refs].tolist():
        cluster[item] = len(rep_items)
        rep_words[len(rep_items)] = hashes[item]
        rep_array[len(rep_items)] = item
        rep_items.append(item)
    n_ref_clusters = len(rep_items)
    joined = np.ones(n, dtype=np.float64)  # similarity to the cluster's kept image

    rest = order[n_refs:]
    # A representative with no later item within the bound is no later item's
    # candidate (close pairs: the nearest later item of each).
    alone = None
    if close_pairs is not None and close_pairs.serves(mode, n_refs, hashes, threshold):
        alone = close_pairs.nearest_later > threshold
    # With a pair memo, numpy settles the items whose known candidates decide
    # them (settled_block.settle); the loop below places only the others.
    known = pairs.values.get if pairs is not None else None
    size = _BLOCK if known is None else _MEMO_BLOCK
    n_rest = len(rest)

    known_upto = 0  # the first items, placed by cluster_from_known

    def block_at(b: int) -> np.ndarray | None:
        """Block ``b`` of ``rest`` past ``known_upto`` (``None`` past the end), once arrived."""
        begin = known_upto + b * size
        end = begin + size
        if arriving is not None:
            end = min(end, arriving.wait(n_refs + end) - n_refs)
        return rest[begin:end] if begin < min(end, n_rest) else None

    def searched_at(b: int) -> tuple[np.ndarray | None, list]:
        block = block_at(b)
        return block, verifier.searched(block.tolist()) if block is not None else []

    sure = max(SURE_SIMILARITY, min_similarity)
    continues = None  # the item is the next still of the previous one's video
    if mode == "global" and sequence is not None and len(rest) and known is not None:
        seq = sequence[rest]
        continues = np.zeros(len(rest), dtype=bool)
        continues[1:] = (seq[1:] >= 0) & (seq[1:] == seq[:-1])

    if (
        known is not None
        and mode == "global"
        and not n_refs
        and not (continues is not None and continues.any())
    ):
        # Similarities known: the first items (most often all) in numpy, by windows.
        whole = cluster_from_known(
            hashes, threshold=threshold, k=max_candidates, min_similarity=min_similarity,
            sure=sure, lookup=pairs.lookup, close_pairs=close_pairs,
        )  # fmt: skip
        if whole is not None:
            known_upto, n_reps = whole.placed, len(whole.rep_items)
            cluster[:known_upto], joined[:known_upto] = whole.cluster, whole.joined
            rep_array[:n_reps], rep_words[:n_reps] = whole.rep_items, hashes[whole.rep_items]
            rep_items = whole.rep_items.tolist()
            rec.add_block(0, [], whole.rows, np.arange(len(whole.rows)))
            if progress is not None:
                progress(known_upto, len(rest))

    def make_lone(block, rows: list[int], made: int, before: int) -> int:
        """Number, in order, the lone new clusters ``rows[made:]`` before row ``before``."""
        upto = bisect.bisect_left(rows, before, made)
        if upto > made:
            new_items = block[rows[made:upto]]
            ids = np.arange(len(rep_items), len(rep_items) + len(new_items))
            rep_words[ids], rep_array[ids], cluster[new_items] = hashes[new_items], new_items, ids
            rep_items.extend(new_items.tolist())
        return upto

    # The previous non-reference item in order.
    previous = int(rest[known_upto - 1]) if known_upto else -1
    current = -1  # sequential mode: cluster of the last kept image
    # One thread makes the next block's search sides (batched FFTs and
    # filters, which release the GIL) while this one scores the current block.
    pool = ThreadPoolExecutor(1, thread_name_prefix="nve-verify") if rec.computes else None
    try:
        ahead = pool.submit(searched_at, 0) if pool is not None else None
        b = -1
        while True:
            b += 1
            start = known_upto + b * size
            if ahead is not None:
                block, sides = ahead.result()
                ahead = None
                if block is None:
                    break
                verifier.add_searched(block.tolist(), sides)
                ahead = pool.submit(searched_at, b + 1)
            else:
                block = block_at(b)
                if block is None:
                    break
            n_known = n_ref_clusters if mode == "sequential" else len(rep_items)
            # The known representatives within the bound, for the whole block at once.
            lone = inside = None  # rows starting a cluster, made in bulk (settled.lone_new)
            if alone is not None and known is not None:  # from the close pairs
                candidates, inside = known_from_pairs(
                    close_pairs, start, start + len(block), threshold, cluster, rep_array,
                    rep_words[:n_known], hashes[block],
                )  # fmt: skip
            else:
                candidates = distances(hashes[block], rep_words[:n_known])
            if known is None:
                close_rows, close_cols = np.nonzero(candidates <= threshold)
                close_d = candidates[close_rows, close_cols]
                bounds = np.searchsorted(close_rows, np.arange(len(block) + 1)).tolist()
            items = block.tolist()
            settled = None
            if known is not None:
                settled = settle(
                    candidates, block, rep_array, known,
                    threshold=threshold, k=max_candidates, min_similarity=min_similarity,
                    sure=sure, known_many=pairs.lookup, nearest_first=alone is not None,
                )  # fmt: skip
                # No time neighbours: the whole block in numpy, if it settles.
                placed = None
                if mode == "global" and continues is None:
                    placed = settled.place_all(hashes[block], n_known, threshold)
                    if placed is None:  # spoilt: made again for the loop
                        settled = settle(
                            candidates, block, rep_array, known,
                            threshold=threshold, k=max_candidates, min_similarity=min_similarity,
                            sure=sure, known_many=pairs.lookup, nearest_first=alone is not None,
                        )  # fmt: skip
                # A candidate after the nearest (the time neighbour's or the
                # last kept image's cluster) is checked unless one was sure.
                after = np.zeros(len(items), dtype=bool)
                if mode == "sequential":
                    after[:] = True
                elif continues is not None:
                    after = continues[start : start + len(items)]
                loose = settled.open | (after & ~settled.sure)
                if continues is not None:
                    loose = settled.loose_after(after, 0, int(cluster[previous]))
                if placed is not None:
                    lone = np.zeros(len(items), dtype=bool)
                    lone[placed] = True
                    loose[:] = False
                    lone_rows, made = placed.tolist(), 0
                elif inside is not None and mode == "global":
                    lone = settled.lone_new(inside, after)
                    loose &= ~lone
                    lone_rows, made = np.flatnonzero(lone).tolist(), 0
                cluster[block] = settled.cluster  # the previous item's, for the loop
            first_row = len(rec.rows)
            row_positions: list[int] = []
            p = -1
            while True:
                if settled is None:
                    p += 1
                    if p >= len(items):
                        break
                else:
                    if p + 1 >= len(items):
                        break
                    p += 1 + int(loose[p + 1 :].argmax())
                    if not loose[p]:
                        break
                if lone is not None:  # the lone new clusters before this row, in order
                    made = make_lone(block, lone_rows, made, p)
                item = items[p]
                previous = items[p - 1] if p else previous
                if settled is None:
                    n_reps = len(rep_items) if mode == "global" else n_known
                    lo, hi = bounds[p], bounds[p + 1]
                    cands = hash_candidates(
                        close_cols[lo:hi],
                        close_d[lo:hi],
                        n_known,
                        hashes[item],
                        rep_words[n_known:n_reps],
                        threshold,
                        max_candidates,
                    )
                else:  # the same: every representative made since was added to it
                    row = settled.cols[p]
                    m = int((row >= 0).sum())
                    cands = list(zip(row[:m].tolist(), settled.dists[p, :m].tolist(), strict=True))
                extra = -1
                if mode == "sequential":
                    extra = current
                elif (
                    sequence is not None
                    and previous >= 0
                    and sequence[item] >= 0
                    and sequence[previous] == sequence[item]
                ):
                    extra = int(cluster[previous])
                if extra >= 0 and all(c != extra for c, _ in cands):
                    cands.append((extra, int(hamming_bits(hashes[item], rep_words[extra]))))
                n_rows = len(rec.rows)
                best_c, best_s = -1, -np.inf
                for c, d in cands:  # nearest by hash first
                    s = rec.score(rep_items[c], item, d)
                    if s >= min_similarity and (s > best_s or (s == best_s and c < best_c)):
                        best_c, best_s = c, s
                    if best_s >= sure:
                        break  # clearly the same view: the others need no check
                if best_c < 0:
                    best_c = len(rep_items)
                    rep_words[best_c] = hashes[item]
                    rep_array[best_c] = item
                    rep_items.append(item)
                    current = best_c
                    if (
                        settled is not None and mode == "global" and p + 1 < len(items)
                        and not (alone is not None and alone[item])
                    ):  # fmt: skip
                        # Later items within the bound have a new candidate.
                        gap = _small_distances(hashes[block[p + 1 :]], hashes[item][None, :])
                        near = p + 1 + np.flatnonzero(gap <= threshold)
                        if len(near):
                            near = settled.add(near, best_c, gap[near - p - 1].astype(np.int64))
                            loose[near] = settled.open[near] | (after[near] & ~settled.sure[near])
                            cluster[block[near]] = settled.cluster[near]
                else:
                    joined[item] = best_s
                cluster[item] = best_c
                row_positions += [p] * (len(rec.rows) - n_rows)
                if continues is not None and settled is not None and p + 1 < len(items):
                    loose[p + 1 :] = settled.loose_after(after, p + 1, best_c)
                    if lone is not None:
                        loose[p + 1 :] &= ~lone[p + 1 :]
            if lone is not None:
                make_lone(block, lone_rows, made, len(items))
            if settled is not None:
                rows, cols = np.nonzero(
                    ~loose[:, None]
                    & (np.arange(settled.cols.shape[1]) < settled.n_checked[:, None])
                )
                kept_c = settled.cols[rows, cols]
                bulk = np.column_stack(
                    [block[rows], rep_array[kept_c], settled.dists[rows, cols]]
                ).astype(np.float64)
                bulk = np.column_stack([bulk, settled.sims[rows, cols]])
                rec.add_block(first_row, row_positions, bulk, rows)
                done = ~loose if lone is None else ~loose & ~lone
                joined[block[done]] = settled.similarity[done]
            if len(items):
                previous = items[-1]
            if b % 8 == 7:
                verifier.release_pages()
            if progress is not None:
                progress(min(start + size, len(rest)), len(rest))
    except BaseException:
        if arriving is not None:  # the thread waiting ahead for items must not hold up the exit
            arriving.abort()
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    if arriving is not None:  # only the items that arrived
        n = arriving.count
        hashes, cluster, joined = hashes[:n], cluster[:n], joined[:n]
        order, reference_mask = order[:n], reference_mask[:n]
        quality = arriving.arrived_quality(keep)

    rep_array = rep_array[: len(rep_items)].copy()
    kept_of_cluster = rep_array.copy()
    if keep != "first" and n:
        rec.sync()

        def verified_by_all(candidate: int, members: np.ndarray) -> bool:
            return all(rec.score(candidate, int(m)) >= min_similarity for m in members)

        kept_of_cluster = choose_keepers(
            cluster, rep_array, order, quality, reference_mask, verified_by_all
        )
    kept, kept_index, distance = keeper_arrays(hashes, cluster, kept_of_cluster)
    if keep == "first":
        # Each duplicate's similarity to its representative, scored when it joined.
        similarity = np.where(kept, 1.0, joined)
    else:
        similarity = np.ones(n, dtype=np.float64)
        for i in np.flatnonzero(~kept).tolist():
            similarity[i] = rec.score(int(kept_index[i]), i)
    # Nothing in the result refers to the verifier; emptied now all the same,
    # so a caller keeping a reference (a traceback, a debugger) keeps no cache.
    verifier.clear()
    return VerifiedClusterResult(
        cluster,
        kept,
        distance,
        kept_index,
        len(rep_items),
        threshold,
        similarity=similarity,
        min_similarity=min_similarity,
        changes=changes,
        checked=rec.checked(),
    )

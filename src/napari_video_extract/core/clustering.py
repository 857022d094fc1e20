"""Clustering of perceptual hashes: exact, vectorised, deterministic, chain-free.

:func:`cluster_hashes` groups packed hashes (hash only). The two-stage
matching of :mod:`~napari_video_extract.core.matching` (hash proposes, an
aligned comparison decides) builds on the same ordering and keeper rules.
Global mode searches with
:class:`~napari_video_extract.core.nearest_representative.NearestRepresentative`
(blocked brute force); sequential mode with a pigeonhole index of hash chunks.
:func:`choose_keepers` re-chooses the kept image of each cluster for the
``sharpest``/``largest`` policies so that no cluster chains: every member
stays within reach of the kept image.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_video_extract.core.cores import usable_cores
from napari_video_extract.core.dedup_settings import KEEP_POLICIES, MODES
from napari_video_extract.core.hashing import hamming_bits
from napari_video_extract.core.keepers import choose_keepers, keeper_arrays
from napari_video_extract.core.nearest_representative import NearestRepresentative

__all__ = ["ClusterResult", "choose_keepers", "cluster_hashes", "keeper_arrays"]

_PARALLEL_MIN_ITEMS = 20_000  # fewer items are clustered in one thread
_MAX_CLUSTER_THREADS = 4
_PIECE = 1 << 14  # elements per vectorised step: small arrays stay in cache


# ------------------------------------------------------------------- clustering


@dataclass
class ClusterResult:
    """Clusters of near-duplicate hashes.

    Attributes
    ----------
    cluster : ndarray of int64, shape (N,)
        Cluster id per item, numbered from 0 in order of creation.
    kept : ndarray of bool, shape (N,)
        Exactly one kept item per cluster.
    distance : ndarray of int64, shape (N,)
        Hamming distance in bits to the kept item of the item's cluster
        (0 for kept items). Never above ``threshold``, whatever the keep
        policy (see :func:`choose_keepers`).
    kept_index : ndarray of int64, shape (N,)
        Index of the kept item of the item's cluster.
    n_clusters : int
        Number of clusters.
    threshold : int
        Threshold used, in bits.
    """

    cluster: np.ndarray
    kept: np.ndarray
    distance: np.ndarray
    kept_index: np.ndarray
    n_clusters: int
    threshold: int


def _chunk_layout(n_bits: int, n_words: int, threshold: int, n_queries: int, n_targets: int):
    """Choose how to split hashes into chunks for the pigeonhole index.

    Two hashes within ``threshold`` bits agree within ``threshold // m`` bits
    on at least one of ``m`` chunks, so only targets whose chunk lies in that
    small Hamming ball around the query's chunk are candidates. Returns
    ``None`` when a plain distance matrix is cheaper.
    """
    brute_cost = n_queries * n_targets * n_words
    best = None
    for per_word in (1, 2, 4, 8):
        width = 64 // per_word
        chunks = []
        for w in range(n_words):
            for j in range(per_word):
                real = min(width, max(0, n_bits - (64 * w + j * width)))
                if real:
                    chunks.append((w, j, width, real))
        radius = threshold // len(chunks)
        min_real = min(c[3] for c in chunks)
        if radius >= min_real:
            continue
        ball = sum(math.comb(min(width, max(c[3] for c in chunks)), k) for k in range(radius + 1))
        if ball > 4096:
            continue
        expected = n_targets / 2.0**min_real
        lookup = 2 if width <= 16 else 8  # table lookup vs binary search
        cost = len(chunks) * ball * n_queries * (lookup + 4 * expected) + 4 * n_targets
        if best is None or cost < best[0]:
            best = (cost, chunks, radius)
    if best is None or best[0] >= brute_cost:
        return None
    return best[1], best[2]


def _flip_masks(width: int, real: int, radius: int) -> np.ndarray:
    positions = range(width - real, width)  # real bits are the top ``real`` of the chunk
    masks = [0]
    for k in range(1, radius + 1):
        for combo in itertools.combinations(positions, k):
            masks.append(sum(1 << p for p in combo))
    return np.array(masks, dtype=np.uint64)


def _small_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming bits as small unsigned ints (allocating big int64 arrays is slow)."""
    counts = np.bitwise_count(a ^ b) if hasattr(np, "bitwise_count") else None
    if counts is None:  # pragma: no cover - numpy < 2
        return hamming_bits(a, b)
    return counts[..., 0] if counts.shape[-1] == 1 else counts.sum(axis=-1, dtype=np.uint16)


def _range_pairs(
    queries: np.ndarray, targets: np.ndarray, threshold: int, n_bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query, target, distance) with distance <= threshold, vectorised.

    A pair may be returned more than once (found through several chunks).
    """
    n_q, n_t = len(queries), len(targets)
    empty = np.zeros(0, dtype=np.int64)
    if n_q == 0 or n_t == 0:
        return empty, empty, empty
    out_q, out_t, out_d = [], [], []
    layout = _chunk_layout(n_bits, queries.shape[1], threshold, n_q, n_t)
    if layout is None:
        step = max(1, _PIECE // max(1, n_t * queries.shape[1]))
        for start in range(0, n_q, step):
            d = _small_distances(queries[start : start + step, None, :], targets[None, :, :])
            qi, ti = np.nonzero(d <= threshold)
            if qi.size:
                out_q.append(qi + start)
                out_t.append(ti)
                out_d.append(d[qi, ti])
    else:
        chunks, radius = layout
        for w, j, width, real in chunks:
            shift = np.uint64(64 - (j + 1) * width)
            mask = np.uint64((1 << width) - 1 if width < 64 else 0xFFFFFFFFFFFFFFFF)
            target_vals = (targets[:, w] >> shift) & mask
            order = np.argsort(target_vals, kind="stable")
            query_vals = (queries[:, w] >> shift) & mask
            flips = _flip_masks(width, real, radius)
            if width <= 16:
                bucket_count = np.bincount(target_vals.astype(np.intp), minlength=1 << width)
                bucket_start = np.cumsum(bucket_count) - bucket_count
            else:
                sorted_vals = target_vals[order]
            step = max(1, _PIECE // len(flips))
            for start in range(0, n_q, step):
                keys = (query_vals[start : start + step, None] ^ flips[None, :]).ravel()
                if width <= 16:
                    keys = keys.astype(np.intp)
                    lo, counts = bucket_start[keys], bucket_count[keys]
                else:
                    lo = np.searchsorted(sorted_vals, keys, side="left")
                    counts = np.searchsorted(sorted_vals, keys, side="right") - lo
                hit = np.flatnonzero(counts)
                if hit.size == 0:
                    continue
                lo, counts = lo[hit], counts[hit]
                total = int(counts.sum())
                qi = np.repeat(hit // len(flips) + start, counts)
                offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
                ti = order[np.repeat(lo, counts) + offsets]
                d = _small_distances(queries[qi], targets[ti])
                close = d <= threshold
                if close.any():
                    out_q.append(qi[close])
                    out_t.append(ti[close])
                    out_d.append(d[close])
    if not out_q:
        return empty, empty, empty
    return (
        np.concatenate(out_q).astype(np.int64),
        np.concatenate(out_t).astype(np.int64),
        np.concatenate(out_d).astype(np.int64),
    )


def _nearest_per_query(qi, ti, d, n_queries):
    """Per query, the nearest target (ties: lowest target index), or -1."""
    best_t = np.full(n_queries, -1, dtype=np.int64)
    best_d = np.zeros(n_queries, dtype=np.int64)
    if qi.size:
        order = np.lexsort((ti, d, qi))
        first = np.ones(order.size, dtype=bool)
        first[1:] = qi[order][1:] != qi[order][:-1]
        sel = order[first]
        best_t[qi[sel]] = ti[sel]
        best_d[qi[sel]] = d[sel]
    return best_t, best_d


def _cluster_threads() -> int:
    return max(1, min(_MAX_CLUSTER_THREADS, usable_cores()))


def _cluster_global(hashes, order, n_refs, threshold, n_bits):
    n, n_words = hashes.shape
    cluster = np.full(n, -1, dtype=np.int64)
    rep_items = np.zeros(n, dtype=np.int64)  # item index of each cluster's representative
    rest = order[n_refs:]
    n_threads = _cluster_threads() if len(rest) >= _PARALLEL_MIN_ITEMS else 1
    reps = NearestRepresentative(n_words, n, threshold, n_bits, n_threads)
    try:
        refs = order[:n_refs]  # references never join anything
        cids = reps.add(hashes[refs])
        rep_items[cids] = refs
        cluster[refs] = cids
        start = 0
        while start < len(rest):
            block = rest[start : start + reps.block_size()]
            start += len(block)
            q = hashes[block]
            best_c, best_d = reps.nearest(q)
            # Only unmatched items can become representatives; a later item of
            # the block may be nearer to one of those than to its match, so rows
            # with an earlier unmatched item within the threshold get an exact
            # check in order.
            free = np.flatnonzero(best_c < 0)
            needs_check = np.zeros(len(block), dtype=bool)
            if free.size:
                inner = _small_distances(q[:, None, :], q[None, free, :])
                earlier = free[None, :] < np.arange(len(block))[:, None]
                needs_check = ((inner <= threshold) & earlier).any(axis=1)
            if not needs_check.any():
                cids = reps.add(q[free])
                rep_items[cids] = block[free]
                best_c[free] = cids
                cluster[block] = best_c
                continue
            inner = _small_distances(q[:, None, :], q[None, :, :]).tolist()
            new_reps: list[tuple[int, int]] = []  # (position in block, cluster id)
            best_c_list, best_d_list = best_c.tolist(), best_d.tolist()
            for p, item in enumerate(block.tolist()):
                c, dist = best_c_list[p], best_d_list[p]
                if needs_check[p]:
                    row = inner[p]
                    for qpos, cid in new_reps:
                        # New clusters are younger than any earlier match: on a
                        # tie the earlier match stays.
                        if row[qpos] <= threshold and (c < 0 or row[qpos] < dist):
                            c, dist = cid, row[qpos]
                if c < 0:
                    c = int(reps.add(q[p : p + 1])[0])
                    rep_items[c] = item
                    new_reps.append((p, c))
                cluster[item] = c
    finally:
        reps.close()
    return cluster, rep_items[: reps.count].copy()


def _cluster_sequential(hashes, order, n_refs, threshold, n_bits):
    n = len(hashes)
    cluster = np.full(n, -1, dtype=np.int64)
    rep_items: list[int] = []
    for item in order[:n_refs]:
        cluster[item] = len(rep_items)
        rep_items.append(int(item))
    rest = order[n_refs:]
    # Nearest reference of every item, vectorised; then one pass in order.
    ref_c, ref_d = _nearest_per_query(
        *_range_pairs(hashes[rest], hashes[order[:n_refs]], threshold, n_bits), len(rest)
    )
    as_int = [int.from_bytes(row.astype(">u8").tobytes(), "big") for row in hashes[rest]]
    current = -1  # position in ``rest`` of the last kept image
    for p, item in enumerate(rest.tolist()):
        c, dist = int(ref_c[p]), int(ref_d[p])
        if current >= 0:
            d_cur = (as_int[p] ^ as_int[current]).bit_count()
            if d_cur <= threshold and (c < 0 or d_cur < dist):
                c, dist = int(cluster[rest[current]]), d_cur
        if c < 0:
            c = len(rep_items)
            rep_items.append(item)
            current = p
        cluster[item] = c
    return cluster, np.array(rep_items, dtype=np.int64)


def check_cluster_inputs(hashes, mode, keep, threshold, reference_mask, quality):
    """Check and normalise the arguments shared by every clustering entry point.

    Returns ``(hashes, reference_mask, quality)``: hashes as a contiguous
    ``(N, W)`` uint64 array, the mask as ``(N,)`` bool, quality as ``(N, K)``
    float64 (``None`` for ``keep="first"``).

    Raises
    ------
    ValueError
        Bad shapes, negative threshold, unknown mode or keep policy, or a
        quality-based policy without ``quality``.
    """
    hashes = np.asarray(hashes)
    if hashes.ndim == 1:
        hashes = hashes[:, None]
    if hashes.ndim != 2:
        raise ValueError(f"hashes must have shape (N, W), got {hashes.shape}")
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if keep not in KEEP_POLICIES:
        raise ValueError(f"unknown keep policy {keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
    if int(threshold) != threshold or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number of bits, got {threshold!r}")
    reference_mask = (
        np.zeros(n, dtype=bool) if reference_mask is None else np.asarray(reference_mask, bool)
    )
    if reference_mask.shape != (n,):
        raise ValueError(f"reference_mask must have shape ({n},), got {reference_mask.shape}")
    if keep != "first":
        if quality is None:
            raise ValueError(f"keep={keep!r} needs a quality array")
        quality = np.asarray(quality, dtype=np.float64)
        if quality.ndim == 1:
            quality = quality[:, None]
        if quality.shape[0] != n or quality.ndim != 2:
            raise ValueError(f"quality must have shape ({n},) or ({n}, K), got {quality.shape}")
    return hashes, reference_mask, quality


def cluster_hashes(
    hashes: np.ndarray,
    *,
    threshold: int,
    mode: str = "global",
    quality: np.ndarray | None = None,
    keep: str = "first",
    reference_mask: np.ndarray | None = None,
    n_bits: int | None = None,
    close_pairs: Any = None,
) -> ClusterResult:
    """Group near-duplicate hashes; deterministic for a given item order.

    Items must already be in capture order (ordering is the caller's job, see
    :func:`ordered_images`). Reference items are processed first; each one is
    its own cluster and is always the kept item of that cluster.

    * ``"global"``: each item joins the **nearest** cluster representative
      (the first item of a cluster) within ``threshold``, ties going to the
      older cluster, else starts a new cluster. An item is never compared with
      mere members, so there is no chaining: two items of one cluster are
      within ``2 * threshold`` of each other through the representative.
    * ``"sequential"``: each item is compared with the last kept image (and
      the references); a scene seen again later is a new cluster.

    Comparisons are vectorised and exact: in global mode, blocks of items
    against all representatives by brute force (XOR and popcount in
    cache-sized buffers, split between threads), with an exact in-order check
    against representatives created inside the block. 100,000 fully distinct
    64-bit hashes (5e9 pairs, the worst case) take about 4 s on 2 cores and a
    few MB (``benchmarks/bench_dedup.py``); duplicate-heavy input is much
    faster (0.3 s for 2,000 scenes).

    Parameters
    ----------
    hashes : ndarray of uint64, shape (N, W)
        Packed hashes (:func:`~napari_video_extract.core.hashing.hash_frames`).
    threshold : int
        Largest Hamming distance in bits between duplicates.
    mode : {"global", "sequential"}, optional
        See above.
    quality : ndarray, shape (N,) or (N, K), optional
        Needed for ``keep="sharpest"``/``"largest"``: higher is better, columns
        compared in order (e.g. pixels then bytes).
    keep : {"first", "sharpest", "largest"}, optional
        Which member of each cluster is kept: the first in order, or the one
        with the highest ``quality`` (ties: the first) among the members
        within ``threshold`` of every member of the cluster
        (:func:`choose_keepers`), so no member is farther than ``threshold``
        from the kept image.
    reference_mask : ndarray of bool, shape (N,), optional
        Items that are compared against but never dropped.
    n_bits : int, optional
        Meaningful bits per hash (default ``64 * W``); only used to pick the
        distance type and comparison strategy.
    close_pairs : ClosePairs, optional
        The pairs of these hashes within a bound
        (:class:`~napari_video_extract.core.close_pairs.ClosePairs`): a
        global clustering without references at a threshold within the bound
        filters them instead of searching (same result).

    Returns
    -------
    ClusterResult

    Raises
    ------
    ValueError
        Bad shapes, negative threshold, unknown mode or keep policy, or a
        quality-based policy without ``quality``.
    """
    hashes, reference_mask, quality = check_cluster_inputs(
        hashes, mode, keep, threshold, reference_mask, quality
    )
    threshold = int(threshold)
    n = len(hashes)
    n_bits = int(n_bits) if n_bits is not None else 64 * hashes.shape[1]

    order = np.concatenate([np.flatnonzero(reference_mask), np.flatnonzero(~reference_mask)])
    n_refs = int(reference_mask.sum())
    if close_pairs is not None and close_pairs.serves(mode, n_refs, hashes, threshold):
        from napari_video_extract.core.close_pairs import global_clusters

        cluster, rep_items = global_clusters(close_pairs, threshold)
    else:
        run = _cluster_global if mode == "global" else _cluster_sequential
        cluster, rep_items = run(hashes, order, n_refs, threshold, n_bits)
    n_clusters = len(rep_items)

    kept_of_cluster = rep_items.copy()
    if keep != "first" and n:

        def within_reach(candidate: int, members: np.ndarray) -> bool:
            d = hamming_bits(hashes[members], hashes[candidate][None, :])
            return bool(d.max() <= threshold)

        kept_of_cluster = choose_keepers(
            cluster, rep_items, order, quality, reference_mask, within_reach
        )

    kept, kept_index, distance = keeper_arrays(hashes, cluster, kept_of_cluster)
    return ClusterResult(cluster, kept, distance, kept_index, n_clusters, threshold)

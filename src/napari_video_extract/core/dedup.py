"""Near-duplicate detection and separation, deterministic and undoable.

Two layers:

* :func:`cluster_hashes` works on packed hashes in memory (the napari widget
  uses it with :func:`~napari_video_extract.core.hashing.hash_frames`);
* :func:`dedup_folders` scans folders, hashes (with a cache), clusters, moves
  duplicates aside and writes ``dedup.csv``; :func:`undo_folder` puts every
  moved file back.

Order never comes from the file system: within a folder, images are ordered
by the ``time`` column of ``frames.csv`` (columns ``file,video,time,frame``)
when there is one, else by natural name order (``img2`` before ``img10``);
folders are taken in the order given, reference folders first.

Safety rules of :func:`dedup_folders`:

* nothing is deleted and nothing is overwritten: a name taken at the
  destination gets a ``-1``, ``-2``... suffix (the no-overwrite move is a hard
  link then an unlink, or an exclusive-create copy across file systems);
* every move is appended to ``.nve-moves.jsonl`` in the source folder and
  fsynced **before** the file moves, with the file's size and SHA-256, so a run
  killed half-way can be undone;
* every folder that will be written is checked first: a read-only folder
  raises :class:`~napari_video_extract.core.errors.OutputError` before
  anything moves;
* symbolic links in an input folder are skipped (counted, never hashed, never
  moved), so a link's target can never be pulled out of another folder and a
  relative link can never be left dangling.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract.core.dedup_settings import KEEP_POLICIES, MODES
from napari_video_extract.core.errors import InputError, OutputError, os_error_reason
from napari_video_extract.core.hashing import (
    IMAGE_SUFFIXES,
    METHODS,
    default_threshold,
    hamming_bits,
    hash_bits,
    hash_files,
)
from napari_video_extract.core.ownership import NOT_OURS, csv_is_ours

__all__ = [
    "CSV_NAME",
    "DUPLICATES_DIRNAME",
    "JOURNAL_NAME",
    "KEEP_POLICIES",
    "MODES",
    "ClusterResult",
    "DedupItem",
    "DedupReport",
    "UndoReport",
    "cluster_hashes",
    "dedup_folders",
    "natural_key",
    "ordered_images",
    "undo_folder",
]

CSV_NAME = "dedup.csv"
FRAMES_CSV_NAME = "frames.csv"
JOURNAL_NAME = ".nve-moves.jsonl"
DUPLICATES_DIRNAME = "duplicates"
CSV_COLUMNS = (
    "file", "hash", "cluster", "kept", "distance", "moved_to", "copied_to",
    "kept_file", "time", "status",
)  # fmt: skip

_TILE_PAIRS = 1 << 17  # (item, representative) pairs per step: buffers stay in cache
_MIN_ITEM_BLOCK = 16  # items compared with the representatives at once...
_MAX_ITEM_BLOCK = 256  # ...more while there are few representatives
_PARALLEL_MIN_PAIRS = 1 << 17  # fewer pairs are not worth a hand-off to threads
_PARALLEL_MIN_ITEMS = 20_000
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
        (0 for kept items). After ``keep="sharpest"``/``"largest"`` it can
        exceed the threshold (at most twice it): clustering compares with the
        cluster's first image.
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


if hasattr(np, "bitwise_count"):  # numpy >= 2

    def _popcount_into(words: np.ndarray, out: np.ndarray) -> None:
        np.bitwise_count(words, out=out)

else:  # pragma: no cover - numpy < 2
    _BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount_into(words: np.ndarray, out: np.ndarray) -> None:
        counts = _BYTE_POPCOUNT[np.ascontiguousarray(words).view(np.uint8)]
        out[...] = counts.reshape(*words.shape, 8).sum(axis=-1, dtype=np.uint8)


class _NearestRepresentative:
    """Exact nearest-representative search by blocked brute force.

    Representatives are stored word by word (``(W, capacity)``, each word
    contiguous) in creation order. A block of items is compared with tiles of
    representatives through preallocated buffers of :data:`_TILE_PAIRS`
    elements that stay in the CPU cache (allocating large temporaries is what
    makes numpy slow here); numpy releases the GIL in these loops, so the
    representatives are split between threads. 100,000 distinct 64-bit hashes
    (5e9 pairs) take a few seconds.
    """

    def __init__(self, n_words: int, capacity: int, threshold: int, n_bits: int, n_threads: int):
        self.words = np.zeros((n_words, max(1, capacity)), dtype=np.uint64)
        self.count = 0
        self.threshold = threshold
        # Distances fit in uint8 up to 255 bits; a 256-bit hash needs uint16.
        self.dist_dtype = np.uint8 if n_bits <= 255 else np.uint16
        self.n_threads = max(1, n_threads)
        self._buffers = [self._new_buffers() for _ in range(self.n_threads)]
        self._pool = None
        if self.n_threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.n_threads, thread_name_prefix="nve-cluster")

    def _new_buffers(self):
        xor = np.empty(_TILE_PAIRS, dtype=np.uint64)
        bits = np.empty(_TILE_PAIRS, dtype=np.uint8)
        dist = np.empty(_TILE_PAIRS, dtype=self.dist_dtype)
        low = np.empty(_MAX_ITEM_BLOCK, dtype=self.dist_dtype)
        return xor, bits, dist, low

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def block_size(self) -> int:
        """Items per block: more while there are few representatives."""
        return max(_MIN_ITEM_BLOCK, min(_MAX_ITEM_BLOCK, _TILE_PAIRS // max(1, self.count)))

    def add(self, words: np.ndarray) -> np.ndarray:
        """Append representatives ``(k, W)``; returns their indices."""
        k = len(words)
        self.words[:, self.count : self.count + k] = words.T
        self.count += k
        return np.arange(self.count - k, self.count)

    def _scan(self, queries: np.ndarray, lo: int, hi: int, buffers):
        """Nearest representative in ``[lo, hi)`` within the threshold (ties: lowest index)."""
        b, n_words = queries.shape
        best_d = np.full(b, self.threshold + 1, dtype=np.int64)
        best_r = np.full(b, -1, dtype=np.int64)
        xor_buf, bits_buf, dist_buf, low_buf = buffers
        low = low_buf[:b]
        columns = [queries[:, w, None] for w in range(n_words)]
        tile = max(1, _TILE_PAIRS // b)
        for start in range(lo, hi, tile):
            t = min(tile, hi - start)
            xor = xor_buf[: b * t].reshape(b, t)
            bits = bits_buf[: b * t].reshape(b, t)
            np.bitwise_xor(columns[0], self.words[0, None, start : start + t], out=xor)
            _popcount_into(xor, bits)
            dist = bits
            if n_words > 1:
                dist = dist_buf[: b * t].reshape(b, t)
                dist[...] = bits
                for w in range(1, n_words):
                    np.bitwise_xor(columns[w], self.words[w, None, start : start + t], out=xor)
                    _popcount_into(xor, bits)
                    np.add(dist, bits, out=dist)
            np.minimum.reduce(dist, axis=1, out=low)
            # Strictly better than earlier tiles: ties stay with the older one.
            rows = np.flatnonzero(low < best_d)
            if rows.size:
                best_d[rows] = low[rows]
                best_r[rows] = start + dist[rows].argmin(axis=1)
        return best_r, best_d

    def nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per query: index of the nearest representative within the threshold
        (ties: the oldest) or -1, and its distance."""
        n = self.count
        if self._pool is None or n * len(queries) < _PARALLEL_MIN_PAIRS:
            return self._scan(queries, 0, n, self._buffers[0])
        bounds = [round(k * n / self.n_threads) for k in range(self.n_threads + 1)]
        futures = [
            self._pool.submit(self._scan, queries, bounds[k], bounds[k + 1], self._buffers[k])
            for k in range(self.n_threads)
        ]
        best_r, best_d = futures[0].result()
        for future in futures[1:]:  # later ranges hold younger representatives
            r, d = future.result()
            better = d < best_d
            best_r[better], best_d[better] = r[better], d[better]
        return best_r, best_d


def _cluster_threads() -> int:
    try:
        n_cpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n_cpu = os.cpu_count() or 1
    return max(1, min(_MAX_CLUSTER_THREADS, n_cpu))


def _cluster_global(hashes, order, n_refs, threshold, n_bits):
    n, n_words = hashes.shape
    cluster = np.full(n, -1, dtype=np.int64)
    rep_items = np.zeros(n, dtype=np.int64)  # item index of each cluster's representative
    rest = order[n_refs:]
    n_threads = _cluster_threads() if len(rest) >= _PARALLEL_MIN_ITEMS else 1
    reps = _NearestRepresentative(n_words, n, threshold, n_bits, n_threads)
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


def cluster_hashes(
    hashes: np.ndarray,
    *,
    threshold: int,
    mode: str = "global",
    quality: np.ndarray | None = None,
    keep: str = "first",
    reference_mask: np.ndarray | None = None,
    n_bits: int | None = None,
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
        with the highest ``quality`` (ties: the first).
    reference_mask : ndarray of bool, shape (N,), optional
        Items that are compared against but never dropped.
    n_bits : int, optional
        Meaningful bits per hash (default ``64 * W``); only used to pick the
        distance type and comparison strategy.

    Returns
    -------
    ClusterResult

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
    n_bits = int(n_bits) if n_bits is not None else 64 * hashes.shape[1]
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if keep not in KEEP_POLICIES:
        raise ValueError(f"unknown keep policy {keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
    if int(threshold) != threshold or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number of bits, got {threshold!r}")
    threshold = int(threshold)
    if reference_mask is None:
        reference_mask = np.zeros(n, dtype=bool)
    reference_mask = np.asarray(reference_mask, dtype=bool)
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

    order = np.concatenate([np.flatnonzero(reference_mask), np.flatnonzero(~reference_mask)])
    n_refs = int(reference_mask.sum())
    run = _cluster_global if mode == "global" else _cluster_sequential
    cluster, rep_items = run(hashes, order, n_refs, threshold, n_bits)
    n_clusters = len(rep_items)

    kept_of_cluster = rep_items.copy()
    if keep != "first" and n:
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        keys = [position] + [-quality[:, k] for k in range(quality.shape[1] - 1, -1, -1)]
        ranked = np.lexsort([*keys, cluster])
        first = np.ones(n, dtype=bool)
        first[1:] = cluster[ranked][1:] != cluster[ranked][:-1]
        best = ranked[first]
        kept_of_cluster[cluster[best]] = best
        # A reference is never dropped: it stays the kept item of its cluster.
        ref_clusters = cluster[reference_mask]
        kept_of_cluster[ref_clusters] = rep_items[ref_clusters]

    kept = np.zeros(n, dtype=bool)
    kept[kept_of_cluster] = True
    kept_index = kept_of_cluster[cluster] if n else np.zeros(0, dtype=np.int64)
    distance = (
        hamming_bits(hashes, hashes[kept_index]) if n else np.zeros(0, dtype=np.int64)
    ).astype(np.int64)
    return ClusterResult(cluster, kept, distance, kept_index, n_clusters, threshold)


# ------------------------------------------------------------ folders: scanning


def natural_key(name: str) -> tuple:
    """Sort key putting ``img2`` before ``img10`` (case-insensitive, then exact)."""
    parts = re.split(r"(\d+)", name)
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts if p)
    return (key, name)


def _frame_times(folder: Path) -> dict[str, float]:
    """``file -> time`` from the folder's frames.csv, or ``{}`` if absent/invalid."""
    path = folder / FRAMES_CSV_NAME
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    times: dict[str, float] = {}
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"file", "time"} <= set(reader.fieldnames):
        return {}
    for row in reader:
        try:
            value = float(row["time"])
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and row.get("file"):
            times[Path(row["file"]).name] = value
    return times


@dataclass
class _Scan:
    images: list[Path] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    non_images: int = 0
    symlinks: int = 0


def ordered_images(folder: str | os.PathLike[str]) -> tuple[list[Path], list[float | None]]:
    """Image files of a folder in capture order, independent of listing order.

    Parameters
    ----------
    folder : path
        The folder (not recursed into).

    Returns
    -------
    images : list of Path
        Images listed in ``frames.csv`` by their ``time``, then the others in
        natural name order. Hidden files, our csv/cache/journal files,
        sub-folders, symbolic links and non-image files are left out.
    times : list of float or None
        The ``frames.csv`` time of each image, ``None`` when not listed.

    Raises
    ------
    OSError
        The folder cannot be listed.
    """
    scan = _scan(Path(folder))
    return scan.images, scan.times


def _scan(folder: Path) -> _Scan:
    scan = _Scan()
    times = _frame_times(folder)
    found: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in (CSV_NAME, FRAMES_CSV_NAME):
                continue  # hidden files and our own csv/cache/journal
            if entry.is_symlink():
                scan.symlinks += 1
                continue
            if entry.is_dir():
                continue  # never recurse, so duplicates/ is not scanned
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(folder / name)
            else:
                scan.non_images += 1

    def key(path: Path):
        t = times.get(path.name)
        return (
            (0, t, natural_key(path.name)) if t is not None else (1, 0.0, natural_key(path.name))
        )

    found.sort(key=key)
    scan.images = found
    scan.times = [times.get(p.name) for p in found]
    return scan


# ---------------------------------------------------------------- folders: report


@dataclass
class DedupItem:
    """One image of a dedup run.

    Attributes
    ----------
    path : Path
        Where the image was before the run.
    folder : Path
        The input (or reference) folder it belongs to.
    hash : str
        Hex hash, ``""`` when unreadable.
    cluster : int
        Cluster id, -1 when unreadable.
    kept : bool
        Kept (stays in place, or is copied to ``kept_dir``).
    distance : int
        Bits from the kept image of its cluster.
    kept_path : Path or None
        The kept image of its cluster.
    reference : bool
        From a reference folder: never moved.
    time : float or None
        Capture time from ``frames.csv``.
    moved_to : Path or None
        Where the duplicate was (or, in a dry run, would be) moved.
    copied_to : Path or None
        Where the kept image was (would be) copied.
    error : str or None
        Why it is unreadable or could not be moved.
    """

    path: Path
    folder: Path
    hash: str = ""
    cluster: int = -1
    kept: bool = False
    distance: int = 0
    kept_path: Path | None = None
    reference: bool = False
    time: float | None = None
    moved_to: Path | None = None
    copied_to: Path | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """``kept``, ``duplicate``, ``reference``, ``unreadable`` or ``error``."""
        if self.cluster < 0:
            return "unreadable"
        if self.error:
            return "error"
        if self.reference:
            return "reference"
        return "kept" if self.kept else "duplicate"


@dataclass
class DedupReport:
    """Outcome of :func:`dedup_folders`.

    Attributes
    ----------
    items : list of DedupItem
        Every image, references first, in processing order.
    n_images : int
        Readable images of the input folders (references not counted).
    n_clusters : int
        Clusters holding at least one input image.
    n_kept, n_moved, n_copied, n_duplicates : int
        Kept input images; duplicates moved (planned, in a dry run); kept
        images copied; duplicates found.
    unreadable : list of (Path, str)
        Corrupt/truncated images, left in place.
    errors : list of str
        Moves or copies that failed (one line each).
    skipped_non_images, skipped_symlinks : int
        Files not considered.
    cache_hits, hashed : int
        Hashes read from the cache / computed in this run.
    threshold : int
        Threshold used, in bits.
    n_bits : int
        Bits per hash.
    dry_run : bool
        Nothing was changed.
    csv_paths : list of Path
        ``dedup.csv`` files written.
    elapsed : float
        Wall time in seconds.
    notes : list of str
        Files deliberately left alone (one line each); not failures.
    """

    items: list[DedupItem] = field(default_factory=list)
    n_images: int = 0
    n_clusters: int = 0
    n_kept: int = 0
    n_moved: int = 0
    n_copied: int = 0
    n_duplicates: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_non_images: int = 0
    skipped_symlinks: int = 0
    cache_hits: int = 0
    hashed: int = 0
    threshold: int = 0
    n_bits: int = 64
    dry_run: bool = False
    csv_paths: list[Path] = field(default_factory=list)
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No unreadable image and no failed move."""
        return not self.unreadable and not self.errors

    def summary(self) -> str:
        """One line: images, clusters, kept, moved, unreadable, threshold, time."""
        verb = "would move" if self.dry_run else "moved"
        return (
            f"{self.n_images} images, {self.n_clusters} clusters, {self.n_kept} kept, "
            f"{self.n_moved} {verb}, {len(self.unreadable)} unreadable "
            f"(threshold {self.threshold} of {self.n_bits} bits, "
            f"{self.cache_hits} from cache, {self.elapsed:.1f} s)"
        )

    def problems(self) -> list[str]:
        """One line per unreadable image and per failed move."""
        return [
            f"{path}: unreadable image, left in place: {reason}"
            for path, reason in self.unreadable
        ] + list(self.errors)


# ----------------------------------------------------------- folders: file moves


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _candidate_names(name: str) -> Iterable[str]:
    yield name
    stem, suffix = os.path.splitext(name)
    for k in itertools.count(1):
        yield f"{stem}-{k}{suffix}"


def _free_name(directory: Path, name: str, reserved: set[Path]) -> Path:
    for candidate in _candidate_names(name):
        target = directory / candidate
        if target not in reserved and not os.path.lexists(target):
            return target
    raise AssertionError("unreachable")  # pragma: no cover


class _Journal:
    """Append-only, fsynced log of the moves and copies made from one folder."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.path = folder / JOURNAL_NAME
        self.folder = folder
        self.run_id = run_id
        self._handle = None
        self._next_id = 0

    def append(self, record: dict) -> int:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._next_id += 1
        record = {"run": self.run_id, "id": self._next_id, **record}
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return self._next_id

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _link_or_copy(src: Path, dst: Path) -> None:
    """Create ``dst`` with the content of ``src``; never overwrite (FileExistsError)."""
    try:
        os.link(src, dst, follow_symlinks=False)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # other file system, or no hard links: copy
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)


def _transfer(src: Path, dst: Path, journal: _Journal, *, op: str, reserved: set[Path]) -> Path:
    """Move (``op="move"``) or copy ``src`` to ``dst`` or a free variant of it."""
    st = src.stat()
    digest = _sha256(src)
    while True:
        record = {
            "op": op,
            "src": src.name,
            "dst": str(dst),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": digest,
            # Which file this is, not only what it holds: a copy the user puts
            # back by hand has the same bytes but another identity.
            "dev": st.st_dev,
            "ino": st.st_ino,
        }
        entry_id = journal.append(record)  # before touching anything
        try:
            _link_or_copy(src, dst)
        except FileExistsError:
            journal.append({"op": "cancel", "ref": entry_id})
            dst = _free_name(dst.parent, src.name, reserved)
            reserved.add(dst)
            continue
        if op == "move":
            os.unlink(src)
        return dst


def _is_the_moved_file(src: Path, dst: Path, entry: dict) -> bool:
    """Whether ``src`` is the very file the journalled move took (not a copy of it).

    A move killed between link and unlink leaves one file under two names
    (same inode), or, across file systems, the untouched source whose
    identity and modification time the journal recorded.
    """
    try:
        if os.path.samefile(src, dst):
            return True
        st = src.stat()
    except OSError:
        return False
    return (
        "ino" in entry
        and (st.st_dev, st.st_ino) == (entry.get("dev"), entry.get("ino"))
        and st.st_mtime_ns == entry.get("mtime_ns")
    )


def _finish_interrupted_moves(folder: Path) -> list[str]:
    """Complete moves a killed run left half done (linked, source not yet unlinked).

    Without this, a re-run sees the source again and moves a second copy of it
    to the duplicates folder under a free name. The source is removed only if
    it is proven to be the file that was moved (:func:`_is_the_moved_file`)
    and the destination still holds its journalled bytes; a file of the same
    content put back by hand is left alone.

    Returns
    -------
    list of str
        One line per source left alone although it matches a finished move.
    """
    entries = _read_journal(folder / JOURNAL_NAME)
    cancelled = {(e.get("run"), e.get("ref")) for e in entries if e["op"] == "cancel"}
    left_alone: list[str] = []
    for entry in entries:
        if entry["op"] != "move" or (entry.get("run"), entry.get("id")) in cancelled:
            continue
        src, dst = folder / entry["src"], Path(entry["dst"])
        if not (os.path.lexists(src) and _matches(src, entry) and _matches(dst, entry)):
            continue
        if _is_the_moved_file(src, dst, entry):
            with contextlib.suppress(OSError):
                os.unlink(src)
        else:
            left_alone.append(
                f"{src}: left in place: same bytes as {dst}, which an earlier run moved "
                "there, but not that file (put back by hand?)"
            )
    return left_alone


def _check_writable(folder: Path) -> None:
    """Raise OutputError unless a file can really be created in ``folder``."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(folder, "folder is not writable (nothing was moved)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nve-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(folder, f"folder is not writable: {reason} (nothing was moved)") from exc


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(
            directory, f"cannot create folder: {reason} (nothing was moved)"
        ) from exc
    if not directory.is_dir():
        raise OutputError(directory, "exists and is not a folder (nothing was moved)")
    _check_writable(directory)


def _write_csv_atomic(path: Path, rows: list[dict]) -> None:
    """Write ``dedup.csv`` atomically; a file of that name not ours is kept.

    Raises
    ------
    FileExistsError
        ``path`` exists and was not written by this tool (it is left as it is).
    """
    if not csv_is_ours(path, CSV_COLUMNS):
        raise FileExistsError(errno.EEXIST, NOT_OURS, str(path))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(prefix=CSV_NAME + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _display_path(path: Path | None, folder: Path) -> str:
    if path is None:
        return ""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- dedup_folders


def dedup_folders(
    folders: Sequence[str | os.PathLike[str]],
    *,
    method: str = "phash",
    hash_size: int = 8,
    threshold: int | None = None,
    mode: str = "global",
    keep: str = "first",
    reference: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    duplicates_dir: str | os.PathLike[str] | None = None,
    kept_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    crop_borders: bool = True,
    progress: Callable[[int, int], None] | None = None,
    map_jobs: Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]] | None = None,
) -> DedupReport:
    """Find near-duplicate images in folders and move the duplicates aside.

    All images of all folders are clustered together (see
    :func:`cluster_hashes`); in each cluster one image is kept in place and the
    others are moved to ``duplicates_dir``. Each input folder gets a
    ``dedup.csv`` (columns ``file,hash,cluster,kept,distance,moved_to,
    copied_to,kept_file,time,status``) and a move journal for
    :func:`undo_folder`.

    Parameters
    ----------
    folders : sequence of path
        Input folders, taken in this order (their files in capture order).
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes.
    threshold : int, optional
        Largest distance in bits for duplicates; default
        :func:`~napari_video_extract.core.hashing.default_threshold`.
    mode : {"global", "sequential"}, optional
        Clustering mode.
    keep : {"first", "sharpest", "largest"}, optional
        Which image of a cluster stays: first in order, highest variance of
        the Laplacian, or most pixels then most bytes.
    reference : path or sequence of path, optional
        Folders of images that duplicates are looked for against but that are
        never moved (nor get a ``dedup.csv``).
    duplicates_dir : path, optional
        Where duplicates go; default ``<input folder>/duplicates``.
    kept_dir : path, optional
        Also copy the kept images there.
    dry_run : bool, optional
        Plan only: the report says what would move; no file, folder, csv or
        cache is written.
    crop_borders : bool, optional
        Crop uniform borders before hashing.
    progress : callable(done, total), optional
        Hashing progress.
    map_jobs : callable(func, jobs) -> iterable, optional
        Where to hash the uncached images (see
        :func:`~napari_video_extract.core.hashing.hash_files`); default here,
        in local processes. Clustering and moves always run here.

    Returns
    -------
    DedupReport

    Raises
    ------
    ValueError
        Bad settings (method, hash size, threshold, mode, keep), no folder, or
        a folder given twice.
    InputError
        A folder does not exist or cannot be listed.
    OutputError
        A folder that must be written is read-only or cannot be created;
        raised before anything is moved.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"unknown hash method {method!r}; choose one of {', '.join(METHODS)}")
    n_bits = hash_bits(method, hash_size)
    if threshold is None:
        threshold = default_threshold(method, hash_size)
    if int(threshold) != threshold or not 0 <= threshold <= n_bits:
        raise ValueError(f"threshold must be 0 to {n_bits} bits for this hash, got {threshold!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if keep not in KEEP_POLICIES:
        raise ValueError(f"unknown keep policy {keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
    inputs = [Path(f) for f in folders]
    if not inputs:
        raise ValueError("no folder given")
    if reference is None:
        refs: list[Path] = []
    elif isinstance(reference, str | os.PathLike):
        refs = [Path(reference)]
    else:
        refs = [Path(r) for r in reference]
    seen: set[Path] = set()
    for folder in refs + inputs:
        if not folder.is_dir():
            raise InputError(folder, "no such folder")
        resolved = folder.resolve()
        if resolved in seen:
            raise ValueError(f"{folder}: folder given twice (as input or reference)")
        seen.add(resolved)
    dup_dir = Path(duplicates_dir) if duplicates_dir is not None else None
    keep_dir = Path(kept_dir) if kept_dir is not None else None
    for special in (dup_dir, keep_dir):
        if special is not None and special.resolve() in seen:
            raise ValueError(f"{special}: cannot be one of the input or reference folders")

    left_alone: list[str] = []
    if not dry_run:
        for folder in inputs:
            # Before anything is written (cache, moves): the csv would be replaced.
            if not csv_is_ours(folder / CSV_NAME, CSV_COLUMNS):
                raise OutputError(folder / CSV_NAME, f"{NOT_OURS} (rename it; nothing was moved)")
        for folder in inputs:
            try:
                left_alone += _finish_interrupted_moves(folder)
            except OSError as exc:
                raise OutputError(
                    folder, f"cannot finish an interrupted move: {os_error_reason(exc)}"
                ) from exc

    report = DedupReport(threshold=int(threshold), n_bits=n_bits, dry_run=dry_run)
    report.notes += left_alone
    items: list[DedupItem] = []
    for folder, is_ref in [(f, True) for f in refs] + [(f, False) for f in inputs]:
        try:
            scan = _scan(folder)
        except OSError as exc:
            raise InputError(folder, f"cannot list folder: {exc.strerror or exc}") from exc
        report.skipped_non_images += scan.non_images
        report.skipped_symlinks += scan.symlinks
        for path, t in zip(scan.images, scan.times, strict=True):
            items.append(DedupItem(path=path, folder=folder, reference=is_ref, time=t))

    hashed = hash_files(
        [item.path for item in items],
        method=method,
        hash_size=hash_size,
        crop_borders=crop_borders,
        with_sharpness=keep == "sharpest",
        write_cache=not dry_run,
        read_only_folders=refs,  # reference folders stay untouched
        progress=progress,
        map_jobs=map_jobs,
    )
    report.cache_hits, report.hashed = hashed.cache_hits, hashed.hashed
    readable: list[int] = []
    for i, (item, record) in enumerate(zip(items, hashed.files, strict=True)):
        if record.hash is None:
            item.error = record.error
            if not item.reference:
                report.unreadable.append((item.path, record.error or "unreadable"))
        else:
            item.hash = record.hash.to_hex()
            readable.append(i)

    words = hashed.hash_array()
    quality = None
    if keep == "sharpest":
        quality = np.array([hashed.files[i].sharpness or 0.0 for i in readable])
    elif keep == "largest":
        quality = np.array(
            [
                (hashed.files[i].width * hashed.files[i].height, hashed.files[i].size_bytes)
                for i in readable
            ],
            dtype=np.float64,
        ).reshape(len(readable), 2)
    ref_mask = np.array([items[i].reference for i in readable], dtype=bool)
    result = cluster_hashes(
        words,
        threshold=int(threshold),
        mode=mode,
        quality=quality,
        keep=keep,
        reference_mask=ref_mask,
        n_bits=n_bits,
    )
    for k, i in enumerate(readable):
        item = items[i]
        item.cluster = int(result.cluster[k])
        item.kept = bool(result.kept[k])
        item.distance = int(result.distance[k])
        item.kept_path = items[readable[int(result.kept_index[k])]].path

    inputs_readable = [items[i] for i in readable if not items[i].reference]
    report.n_images = len(inputs_readable)
    report.n_clusters = len({it.cluster for it in inputs_readable})
    report.n_kept = sum(it.kept for it in inputs_readable)
    report.n_duplicates = report.n_images - report.n_kept
    report.items = items

    _plan_and_apply(report, items, inputs, dup_dir, keep_dir, dry_run=dry_run)
    report.elapsed = time.perf_counter() - started
    return report


def _plan_and_apply(report, items, inputs, dup_dir, keep_dir, *, dry_run):
    to_move = [it for it in items if not it.reference and it.cluster >= 0 and not it.kept]
    to_copy = [it for it in items if not it.reference and it.kept] if keep_dir else []

    # Plan destinations first (also what a dry run reports).
    reserved: set[Path] = set()
    for it in to_move:
        target_dir = dup_dir if dup_dir is not None else it.folder / DUPLICATES_DIRNAME
        it.moved_to = _free_name(target_dir, it.path.name, reserved)
        reserved.add(it.moved_to)
    for it in to_copy:
        it.copied_to = _free_name(keep_dir, it.path.name, reserved)
        reserved.add(it.copied_to)
    if dry_run:
        report.n_moved, report.n_copied = len(to_move), len(to_copy)
        return

    # Check every folder we will write before the first move.
    for folder in inputs:
        _check_writable(folder)
    directories = {it.moved_to.parent for it in to_move}
    if to_copy:
        directories.add(keep_dir)
    for directory in sorted(directories):
        _ensure_dir(directory)

    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    journals = {folder: _Journal(folder, run_id) for folder in inputs}
    try:
        for op, group in (("copy", to_copy), ("move", to_move)):
            for it in group:
                planned = it.copied_to if op == "copy" else it.moved_to
                try:
                    done = _transfer(
                        it.path, planned, journals[it.folder], op=op, reserved=reserved
                    )
                except OSError as exc:
                    it.error = f"cannot {op} to {planned}: {exc.strerror or exc}"
                    report.errors.append(f"{it.path}: {it.error}")
                    if op == "copy":
                        it.copied_to = None
                    else:
                        it.moved_to = None
                    continue
                if op == "copy":
                    it.copied_to = done
                    report.n_copied += 1
                else:
                    it.moved_to = done
                    report.n_moved += 1
    finally:
        for journal in journals.values():
            journal.close()

    for folder in inputs:
        rows = []
        for it in items:
            if it.folder != folder:
                continue
            rows.append(
                {
                    "file": it.path.name,
                    "hash": it.hash,
                    "cluster": it.cluster,
                    "kept": "" if it.cluster < 0 else int(it.kept),
                    "distance": "" if it.cluster < 0 else it.distance,
                    "moved_to": _display_path(it.moved_to, folder),
                    "copied_to": _display_path(it.copied_to, folder),
                    "kept_file": _display_path(it.kept_path, folder),
                    "time": "" if it.time is None else repr(it.time),
                    "status": it.status if not it.error else f"{it.status}: {it.error}",
                }
            )
        csv_path = folder / CSV_NAME
        try:
            _write_csv_atomic(csv_path, rows)
            report.csv_paths.append(csv_path)
        except OSError as exc:
            report.errors.append(f"{csv_path}: cannot write: {exc.strerror or exc}")


# ------------------------------------------------------------------------- undo


@dataclass
class UndoReport:
    """Outcome of :func:`undo_folder`.

    Attributes
    ----------
    folder : Path
        The folder.
    restored : list of (Path, Path)
        ``(original place, where it was)`` of files moved back.
    already_in_place : int
        Journal entries whose file never left (e.g. a run killed between the
        journal write and the move) or was already put back.
    removed_copies : int
        Unchanged copies made with ``kept_dir`` that were removed.
    failed : list of (Path, str)
        Files that could not be restored (or copies left alone), with why.
    """

    folder: Path
    restored: list[tuple[Path, Path]] = field(default_factory=list)
    already_in_place: int = 0
    removed_copies: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything was restored."""
        return not self.failed


def _matches(path: Path, entry: dict) -> bool:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
        return _sha256(path) == entry.get("sha256")
    except OSError:
        return False


def _read_journal(path: Path) -> list[dict]:
    """The journal's entries; raises InputError if it exists but cannot be read."""
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        reason = os_error_reason(exc) if isinstance(exc, OSError) else "not text"
        raise InputError(path, f"cannot read the move journal: {reason}") from exc
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: its move had not started
        if isinstance(entry, dict) and "op" in entry:
            entries.append(entry)
    return entries


def undo_folder(folder: str | os.PathLike[str]) -> UndoReport:
    """Put back every file a dedup run moved out of ``folder``.

    Reads the folder's move journal (all runs, newest first). A file is moved
    back only if it is still byte-identical (size and SHA-256) to what was
    moved and its original name is free; anything else is reported in
    ``failed`` and kept in the journal so a later undo can retry. Copies made
    to a ``kept_dir`` are removed if unchanged. The folders the files were
    moved or copied to are removed when that leaves them empty.

    Parameters
    ----------
    folder : path
        An input folder of an earlier :func:`dedup_folders` run.

    Returns
    -------
    UndoReport

    Raises
    ------
    InputError
        The folder does not exist.
    OutputError
        The folder is not writable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    report = UndoReport(folder)
    journal_path = folder / JOURNAL_NAME
    entries = _read_journal(journal_path)
    if not entries:
        return report
    _check_writable(folder)
    cancelled = {(e.get("run"), e.get("ref")) for e in entries if e["op"] == "cancel"}
    remaining: list[dict] = []
    touched_dirs: set[Path] = set()
    for entry in reversed(entries):
        if entry["op"] not in ("move", "copy") or (entry.get("run"), entry.get("id")) in cancelled:
            continue
        src, dst = folder / entry["src"], Path(entry["dst"])
        touched_dirs.add(dst.parent)
        try:
            if entry["op"] == "copy":
                problem = _undo_copy(dst, entry, report)
            else:
                problem = _undo_move(src, dst, entry, report)
        except OSError as exc:  # one file's problem must not stop the others
            problem = os_error_reason(exc)
        if problem:
            report.failed.append((dst if entry["op"] == "copy" else src, problem))
            remaining.append(entry)

    try:
        _rewrite_journal(journal_path, list(reversed(remaining)))
    except OSError as exc:
        # The files are back where they were; only the record is stale, and a
        # later undo finds them in place (already_in_place).
        report.failed.append((journal_path, f"cannot update the journal: {os_error_reason(exc)}"))
    for directory in sorted(touched_dirs, reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only succeeds when empty
    return report


def _rewrite_journal(journal_path: Path, entries: list[dict]) -> None:
    """Keep only ``entries`` in the journal (atomic); remove it when empty."""
    if not entries:
        journal_path.unlink()
        return
    payload = "".join(json.dumps(e) + "\n" for e in entries)
    fd, tmp = tempfile.mkstemp(prefix=JOURNAL_NAME + ".", suffix=".tmp", dir=journal_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, journal_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _undo_copy(dst: Path, entry: dict, report: UndoReport) -> str | None:
    if not os.path.lexists(dst):
        return None
    if _matches(dst, entry):
        dst.unlink()
        report.removed_copies += 1
        return None
    return "copy changed since it was made; left alone"


def _undo_move(src: Path, dst: Path, entry: dict, report: UndoReport) -> str | None:
    src_exists, dst_exists = os.path.lexists(src), os.path.lexists(dst)
    if src_exists and _matches(src, entry):
        # The move never finished (or was undone already). A leftover
        # identical copy/link at the destination is ours: drop it.
        if dst_exists and _matches(dst, entry):
            dst.unlink()
        report.already_in_place += 1
        return None
    if not dst_exists:
        return (
            f"not found at {dst}" if not src_exists else "original name is taken by another file"
        )
    if not _matches(dst, entry):
        return f"{dst} changed after it was moved; not restored"
    if src_exists:
        return f"original name is taken by another file; the moved file is still at {dst}"
    try:
        _link_or_copy(dst, src)
        os.unlink(dst)
    except OSError as exc:
        return f"cannot move back from {dst}: {exc.strerror or exc}"
    report.restored.append((src, dst))
    return None

"""Exact nearest-representative search over packed hashes, by blocked brute force.

:func:`~napari_video_extract.core.clustering.cluster_hashes` (global mode)
asks, for each block of items in order, which cluster representative is
nearest within the threshold; :class:`NearestRepresentative` answers with XOR
and popcount over representatives stored word by word, through cache-sized
buffers, split between threads for big inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NearestRepresentative"]

_TILE_PAIRS = 1 << 17  # (item, representative) pairs per step: buffers stay in cache
_MIN_ITEM_BLOCK = 16  # items compared with the representatives at once...
_MAX_ITEM_BLOCK = 256  # ...more while there are few representatives
_PARALLEL_MIN_PAIRS = 1 << 17  # fewer pairs are not worth a hand-off to threads


if hasattr(np, "bitwise_count"):  # numpy >= 2

    def _popcount_into(words: np.ndarray, out: np.ndarray) -> None:
        np.bitwise_count(words, out=out)

else:  # pragma: no cover - numpy < 2
    _BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount_into(words: np.ndarray, out: np.ndarray) -> None:
        counts = _BYTE_POPCOUNT[np.ascontiguousarray(words).view(np.uint8)]
        out[...] = counts.reshape(*words.shape, 8).sum(axis=-1, dtype=np.uint8)


class NearestRepresentative:
    """Exact nearest-representative search by blocked brute force.

    Representatives are stored word by word (``(W, capacity)``, each word
    contiguous) in creation order. A block of items is compared with tiles of
    representatives through preallocated buffers of :data:`_TILE_PAIRS`
    elements that stay in the CPU cache (allocating large temporaries is what
    makes numpy slow here); numpy releases the GIL in these loops, so the
    representatives are split between threads. 100,000 distinct 64-bit hashes
    (5e9 pairs) take a few seconds.

    Parameters
    ----------
    n_words : int
        ``uint64`` words per hash (W).
    capacity : int
        Most representatives that will be added.
    threshold : int
        Largest distance in bits of a match.
    n_bits : int
        Meaningful bits per hash (picks the distance type).
    n_threads : int
        Threads the representatives are split between (1: none started);
        :meth:`close` stops them.
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

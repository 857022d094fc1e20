"""Close pairs (core.close_pairs): the clusters of the brute-force search, at every threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_video_extract.core import close_pairs as close_pairs_module
from napari_video_extract.core.close_pairs import ClosePairs, global_clusters
from napari_video_extract.core.clustering import cluster_hashes
from napari_video_extract.core.hashing import hamming_bits


def _noisy_scenes(seed: int, n: int, n_words: int, n_scenes: int, flips: int) -> np.ndarray:
    """``n`` hashes: scenes picked at random, each with up to ``flips`` bits flipped per word."""
    rng = np.random.default_rng(seed)
    scenes = rng.integers(0, 2**63, size=(n_scenes, n_words), dtype=np.uint64)
    hashes = scenes[rng.integers(0, n_scenes, n)]
    for _ in range(flips):
        bit = rng.integers(0, 64, size=hashes.shape).astype(np.uint64)
        hashes = hashes ^ np.where(rng.random(hashes.shape) < 0.5, np.uint64(1) << bit, 0)
    return hashes.astype(np.uint64)


def _all_distances(hashes: np.ndarray) -> np.ndarray:
    return hamming_bits(hashes[:, None, :], hashes[None, :, :]).astype(np.int64)


def _same(a, b) -> None:
    for name in ("cluster", "kept", "kept_index", "distance"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.n_clusters == b.n_clusters


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 160),
    n_words=st.sampled_from([1, 2]),
    n_scenes=st.integers(1, 40),
    flips=st.integers(0, 12),
    max_pairs=st.integers(0, 4000),
    keep=st.sampled_from(["first", "sharpest"]),
)
def test_clusters_equal_the_brute_force_search_at_every_threshold(
    seed, n, n_words, n_scenes, flips, max_pairs, keep
):
    hashes = _noisy_scenes(seed, n, n_words, n_scenes, flips)
    n_bits = 64 * n_words
    pairs = ClosePairs(hashes, n_bits=n_bits, max_pairs=max_pairs)
    quality = np.random.default_rng(seed).random(n) if keep != "first" else None
    for threshold in range(max(pairs.bound, 0) + 1):
        fresh = cluster_hashes(hashes, threshold=threshold, keep=keep, quality=quality)
        with_pairs = cluster_hashes(
            hashes, threshold=threshold, keep=keep, quality=quality, close_pairs=pairs
        )
        _same(with_pairs, fresh)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 120),
    n_scenes=st.integers(1, 30),
    flips=st.integers(0, 16),
    max_pairs=st.integers(0, 3000),
)
def test_pairs_nearest_and_bound_are_exact(seed, n, n_scenes, flips, max_pairs):
    hashes = _noisy_scenes(seed, n, 1, n_scenes, flips)
    pairs = ClosePairs(hashes, n_bits=64, max_pairs=max_pairs)
    d = _all_distances(hashes)
    i, j = np.triu_indices(n, 1)
    counts = np.bincount(d[i, j], minlength=65)
    # The bound is the largest whose pairs fit (the first guess may stop lower).
    assert pairs.bound <= 64
    if pairs.bound >= 0:
        assert np.cumsum(counts)[pairs.bound] <= max_pairs
        held = set(zip(*(a.tolist() for a in pairs.within(pairs.bound)), strict=True))
    else:
        assert counts[0] > max_pairs
        held = set()
    expected = {(int(b), int(a)) for a, b in zip(i, j, strict=True) if d[a, b] <= pairs.bound}
    assert held == expected
    assert len(pairs) == len(expected)
    np.fill_diagonal(d, 65)
    nearest = np.minimum(d.min(axis=1), 64) if n else np.zeros(0, np.int64)
    np.testing.assert_array_equal(pairs.nearest, nearest)


def test_a_long_chain_is_walked_in_order(monkeypatch):
    """Each still one bit from the previous: dependencies longer than the numpy rounds."""
    rng = np.random.default_rng(3)
    bits = rng.permutation(np.repeat(np.arange(64), 4))[:200].astype(np.uint64)
    steps = np.uint64(1) << bits
    hashes = np.bitwise_xor.accumulate(np.concatenate([[np.uint64(0x1234)], steps]))[:, None]
    monkeypatch.setattr(close_pairs_module, "_ROUNDS", 2)
    pairs = ClosePairs(hashes, n_bits=64)
    for threshold in (1, 2, 3, 5):
        fresh = cluster_hashes(hashes, threshold=threshold)
        cluster, reps = global_clusters(pairs, threshold)
        np.testing.assert_array_equal(cluster, fresh.cluster)
        assert len(reps) == fresh.n_clusters


def test_threshold_above_the_bound_is_refused_and_cluster_hashes_searches():
    hashes = _noisy_scenes(1, 300, 1, 5, 20)
    pairs = ClosePairs(hashes, n_bits=64, max_pairs=50)
    assert 0 <= pairs.bound < 64
    with pytest.raises(ValueError, match="held up to"):
        pairs.ends(pairs.bound + 1)
    above = pairs.bound + 3
    _same(
        cluster_hashes(hashes, threshold=above, close_pairs=pairs),
        cluster_hashes(hashes, threshold=above),
    )


def test_pairs_serve_only_the_hashes_they_were_found_in():
    hashes = _noisy_scenes(2, 200, 1, 20, 3)
    pairs = ClosePairs(hashes, n_bits=64)
    assert pairs.serves("global", 0, hashes.copy(), 3)  # the same hashes, another array
    other = hashes.copy()
    other[17, 0] ^= np.uint64(1 << 40)  # one bit of one hash: as many hashes, not these
    assert not pairs.serves("global", 0, other, 3)
    assert not pairs.serves("global", 0, hashes[:-1], 3)
    assert not pairs.serves("sequential", 0, hashes, 3)
    assert not pairs.serves("global", 1, hashes, 3)
    # A clustering given pairs of other hashes searches instead: its own clusters.
    _same(
        cluster_hashes(other, threshold=6, close_pairs=pairs), cluster_hashes(other, threshold=6)
    )


def test_the_pass_reports_progress_and_stops_when_progress_raises():
    hashes = _noisy_scenes(4, 1000, 1, 50, 4)
    seen = []
    ClosePairs(hashes, n_bits=64, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) >= 5 and all(t == 1000 for _, t in seen)
    assert [d for d, _ in seen] == sorted({d for d, _ in seen}) and seen[-1][0] < 1000

    class Stop(Exception):
        pass

    def stop_at_third(done, total):
        if done > seen[2][0] - 1:
            raise Stop

    with pytest.raises(Stop):
        ClosePairs(hashes, n_bits=64, progress=stop_at_third)

"""The numpy placement of cluster_verified (pair memo given) equals the per-item rule.

The oracle below restates the documented rule one item at a time (nearest
kept images within the bound, at most ``k``, ties to the older cluster; the
time neighbour's cluster or the last kept image after them; checked in turn
until one is sure; the most similar accepted one wins, ties to the older
cluster). Similarities come from a pair memo that holds every pair (but a
few, then scored by a stand-in verifier), so no thumbnail is compared and
the decisions exercise ties, the sure stop and the bound on purpose. With
few guesses allowed (``_ROUNDS``) the blocks numpy cannot place are placed
by the per-item loop; the whole clustering from known similarities
(:mod:`~napari_video_extract.core.known_clustering`, windows ending early
after few guesses) is checked against the same oracle.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_video_extract.core import (
    known_clustering,
    settled_block,
    verified_loop,
    verify,
)
from napari_video_extract.core.close_pairs import ClosePairs
from napari_video_extract.core.matching import SURE_SIMILARITY, PairSimilarities, cluster_verified
from napari_video_extract.core.verify import THUMB_SHAPE

LEVELS = np.array([0.0, 0.3, 0.55, 0.6, 0.6, 0.75, 0.9, 0.9, 0.95, 1.0])


def _bits(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _reference(words, sims, *, threshold, mode, sequence, k, min_similarity):
    """Clusters, checked rows and similarities, one item at a time."""
    n = len(words)
    reps: list[int] = []
    cluster = [-1] * n
    joined = [1.0] * n
    rows = []
    current = -1
    sure = max(SURE_SIMILARITY, min_similarity)
    for item in range(n):
        n_known = 0 if mode == "sequential" else len(reps)
        near = sorted(
            (_bits(words[item], words[reps[c]]), c)
            for c in range(n_known)
            if _bits(words[item], words[reps[c]]) <= threshold
        )[:k]
        cands = [(c, d) for d, c in near]
        extra = -1
        if mode == "sequential":
            extra = current
        elif sequence is not None and item and 0 <= sequence[item] == sequence[item - 1]:
            extra = cluster[item - 1]
        if extra >= 0 and all(c != extra for c, _ in cands):
            cands.append((extra, _bits(words[item], words[reps[extra]])))
        best_c, best_s = -1, -np.inf
        for c, d in cands:
            s = sims[(reps[c], item)]
            rows.append((item, reps[c], d, s))
            if s >= min_similarity and (s > best_s or (s == best_s and c < best_c)):
                best_c, best_s = c, s
            if best_s >= sure:
                break
        if best_c < 0:
            best_c = len(reps)
            reps.append(item)
            current = best_c
        else:
            joined[item] = best_s
        cluster[item] = best_c
    return np.array(cluster), np.array(rows, dtype=np.float64).reshape(-1, 4), np.array(joined)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 90),
    threshold=st.integers(0, 12),
    mode=st.sampled_from(["global", "sequential"]),
    with_sequence=st.booleans(),
    k=st.integers(1, 5),
    min_similarity=st.sampled_from([0.55, 0.6, 0.9]),
    block=st.sampled_from([1, 3, 8, 512]),
    close_budget=st.sampled_from([None, 0, 40, 100_000]),
    rounds=st.sampled_from([1, 2, 12]),
    drop=st.sampled_from([0.0, 0.0, 0.05]),
)
def test_memo_placement_equals_the_per_item_rule(
    seed, n, threshold, mode, with_sequence, k, min_similarity, block, close_budget, rounds, drop
):
    rng = np.random.default_rng(seed)
    # A few pictures, each hash a few bits off its picture's: many hashes
    # within the bound of several kept images, at equal distances too.
    base = rng.integers(0, 2**63, size=4, dtype=np.int64).astype(np.uint64)
    flips = rng.integers(0, 2, size=(n, 8)).astype(np.uint64) << np.arange(8, dtype=np.uint64)
    words = base[rng.integers(0, len(base), n)] ^ np.bitwise_or.reduce(flips, axis=1)
    hashes = words.reshape(n, 1)
    sequence = None
    if with_sequence:
        sequence = np.cumsum(rng.random(n) < 0.2) - (rng.random(n) < 0.1) * 1000
        sequence = np.maximum(sequence, -1)
    memo = PairSimilarities(n)
    sims = {}
    for b in range(n):
        for a, s in zip(range(b), rng.choice(LEVELS, size=b).tolist(), strict=True):
            sims[(a, b)] = s
    # Some pairs not in the memo (a threshold the warm-up has not reached):
    # verified, by a stand-in verifier that gives the same similarities.
    missing = {p for p in sims if rng.random() < drop}
    memo.values.update((p, s) for p, s in sims.items() if p not in missing)
    thumbs = np.zeros((n, *THUMB_SHAPE), dtype=np.uint8)  # never compared
    # The close pairs (a review's re-clustering), their bound below or above the threshold.
    close = None if close_budget is None else ClosePairs(hashes, n_bits=64, max_pairs=close_budget)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verified_loop, "_MEMO_BLOCK", block)
        # Few guesses: the blocks that need more go to the per-item loop.
        patch.setattr(settled_block, "_ROUNDS", rounds)
        patch.setattr(known_clustering, "_WINDOW", block)
        patch.setattr(known_clustering, "_MIN_WINDOW", 1)
        patch.setattr(known_clustering, "_FIRST_WINDOW", block)
        patch.setattr(known_clustering, "_ROUNDS", rounds)
        patch.setattr(verify.Verifier, "score", lambda self, kept, item: sims[(kept, item)])
        res = cluster_verified(
            hashes,
            thumbs,
            threshold=threshold,
            min_similarity=min_similarity,
            mode=mode,
            sequence=sequence,
            max_candidates=k,
            pairs=memo,
            close_pairs=close,
        )
    assert memo.n_computed <= len(missing)
    cluster, rows, joined = _reference(
        [int(w) for w in words],
        sims,
        threshold=threshold,
        mode=mode,
        sequence=sequence,
        k=k,
        min_similarity=min_similarity,
    )
    assert np.array_equal(res.cluster, cluster)
    got = np.column_stack(
        [res.checked.item, res.checked.kept, res.checked.distance, res.checked.similarity]
    ).astype(np.float64)
    assert np.array_equal(got, rows)  # the same pairs, in the same order
    assert np.array_equal(res.similarity, joined)
    assert np.array_equal(res.checked.accepted, rows[:, 3] >= min_similarity)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 120),
    threshold=st.integers(0, 12),
    k=st.integers(1, 5),
    min_similarity=st.sampled_from([0.55, 0.6, 0.9]),
    window=st.sampled_from([1, 5, 16, 512]),
    min_window=st.sampled_from([1, 4, 32]),
    close_budget=st.sampled_from([None, 0, 60, 100_000]),
    rounds=st.sampled_from([1, 2, 8]),
)
def test_known_clustering_equals_the_per_item_rule(
    seed, n, threshold, k, min_similarity, window, min_window, close_budget, rounds
):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=4, dtype=np.int64).astype(np.uint64)
    flips = rng.integers(0, 2, size=(n, 8)).astype(np.uint64) << np.arange(8, dtype=np.uint64)
    words = base[rng.integers(0, len(base), n)] ^ np.bitwise_or.reduce(flips, axis=1)
    hashes = words.reshape(n, 1)
    memo = PairSimilarities(n)
    for b in range(n):
        pairs = [(a, b) for a in range(b)]
        memo.values.update(zip(pairs, rng.choice(LEVELS, size=b).tolist(), strict=True))
    close = None if close_budget is None else ClosePairs(hashes, n_bits=64, max_pairs=close_budget)
    sure = max(SURE_SIMILARITY, min_similarity)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(known_clustering, "_WINDOW", window)
        patch.setattr(known_clustering, "_MIN_WINDOW", min(min_window, window))
        patch.setattr(known_clustering, "_FIRST_WINDOW", min_window)
        patch.setattr(known_clustering, "_ROUNDS", rounds)
        got = known_clustering.cluster_from_known(
            hashes, threshold=threshold, k=k, min_similarity=min_similarity, sure=sure,
            lookup=memo.lookup, close_pairs=close,
        )  # fmt: skip
    cluster, rows, joined = _reference(
        [int(w) for w in words], memo.values, threshold=threshold, mode="global",
        sequence=None, k=k, min_similarity=min_similarity,
    )  # fmt: skip
    if not n:
        assert got is None
        return
    assert got.placed == n  # every pair known
    assert np.array_equal(got.cluster, cluster)
    first = [int(np.flatnonzero(cluster == c)[0]) for c in range(len(set(cluster.tolist())))]
    assert got.rep_items.tolist() == first
    assert np.array_equal(got.rows, rows)  # the same pairs, in the same order
    assert np.array_equal(got.joined, joined)


def test_known_clustering_stops_before_an_item_that_checks_a_pair_not_known():
    hashes = np.array([[0], [1], [3], [3]], dtype=np.uint64)
    memo = PairSimilarities(4)
    # Item 2 checks (1, 2) first (nearest): not known.
    memo.values.update({(0, 1): 0.3, (0, 2): 0.95, (0, 3): 0.95, (1, 3): 0.2})
    got = known_clustering.cluster_from_known(
        hashes, threshold=2, k=4, min_similarity=0.6, sure=0.9, lookup=memo.lookup
    )
    assert got.placed == 2 and got.cluster.tolist() == [0, 1] and got.rep_items.tolist() == [0, 1]
    assert got.rows[:, :2].tolist() == [[1, 0]]
    memo.values[(1, 2)] = 0.2
    got = known_clustering.cluster_from_known(
        hashes, threshold=2, k=4, min_similarity=0.6, sure=0.9, lookup=memo.lookup
    )
    assert got.cluster.tolist() == [0, 1, 0, 0] and got.rep_items.tolist() == [0, 1]
    assert got.joined.tolist() == [1.0, 1.0, 0.95, 0.95]


def test_memo_lookup_equals_dict_get_as_the_memo_grows():
    rng = np.random.default_rng(2)
    memo = PairSimilarities(50)
    kept, item = rng.integers(0, 50, size=(2, 400))
    for step in range(6):
        for a, b in rng.integers(0, 50, size=(40, 2)).tolist():
            memo.values.setdefault((a, b), float(rng.random()))  # a pair's value never changes
        got = memo.lookup(kept, item)
        expected = [memo.values.get((a, b), np.nan) for a, b in zip(kept, item, strict=True)]
        np.testing.assert_array_equal(got, expected, err_msg=f"step {step}")
    assert np.isnan(PairSimilarities(3).lookup(np.array([0]), np.array([1]))).all()

"""Property-based tests (hypothesis) of the engine's pure parts.

Time parsing, sampling plans (interval, head/tail, VFR), the decode planner,
clustering invariants, and undo(dedup(x)) == x on real image folders.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from napari_video_extract.core.decode import plan_segments
from napari_video_extract.core.dedup import (
    cluster_hashes,
    dedup_folders,
    natural_key,
    undo_folder,
)
from napari_video_extract.core.probe import VideoInfo
from napari_video_extract.core.sampling import (
    EPS,
    head_tail_times,
    interval_times,
    parse_time,
    samples_for,
)

FAST = settings(max_examples=150, deadline=None)

# ----------------------------------------------------------------- parse_time


def _clock(seconds_ms: int) -> str:
    h, rem = divmod(seconds_ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@FAST
@given(st.integers(min_value=0, max_value=10 * 3_600_000))
def test_parse_time_round_trips_clock_and_seconds(ms):
    assert parse_time(_clock(ms)) == pytest.approx(ms / 1000, abs=1e-9)
    assert parse_time(f"{ms / 1000!r}") == ms / 1000
    assert parse_time(ms / 1000) == ms / 1000


@FAST
@given(st.text(max_size=12))
def test_parse_time_accepts_only_finite_non_negative(text):
    try:
        value = parse_time(text)
    except ValueError as exc:
        assert "not a time" in str(exc)
        return
    assert math.isfinite(value) and value >= 0


@pytest.mark.parametrize(
    "bad", ["", "-1", "nan", "inf", "1:60", "1:00:60", "12s", "1e400", "::", "1:2:3:4"]
)
def test_parse_time_rejects_garbage(bad):
    with pytest.raises(ValueError, match="not a time"):
        parse_time(bad)


# ----------------------------------------------------------------- sampling

durations = st.floats(min_value=0.05, max_value=300, allow_nan=False)
steps = st.floats(min_value=0.04, max_value=60, allow_nan=False)


@st.composite
def frame_tables(draw, max_frames=400):
    """Increasing frame times from 0 (VFR: arbitrary positive gaps)."""
    gaps = draw(
        st.lists(st.floats(min_value=0.001, max_value=2.0), min_size=0, max_size=max_frames - 1)
    )
    return np.concatenate([[0.0], np.cumsum(gaps)]) if gaps else np.zeros(1)


@FAST
@given(durations, steps, st.floats(0, 1), st.floats(0, 1.2))
def test_interval_plan_sorted_unique_in_bounds(duration, every, start_f, end_f):
    start, end = start_f * duration, end_f * duration
    assume(min(end, duration) - start > 2 * EPS)
    times = interval_times(duration, every=every, start=start, end=end)
    stop = min(end, duration)
    assert np.all(np.diff(times) > 0)
    assert len(times) == 0 or (times[0] == start and times[-1] < stop)
    # t_k = start + k * every for every t_k < stop: none missing at the end
    # (the engine's tolerance: instants within EPS * every of the end are out).
    assert start + len(times) * every >= stop - EPS * max(1.0, every)


@FAST
@given(frame_tables(), steps, st.floats(0, 1))
def test_vfr_samples_pick_the_frame_on_screen_once(frame_times, every, start_f):
    duration = float(frame_times[-1]) + 0.04
    start = start_f * duration * 0.99
    times = interval_times(duration, every=every, start=start)
    samples = samples_for(frame_times, times)
    frames = [s.frame for s in samples]
    assert frames == sorted(set(frames)), "frames must be increasing, never repeated"
    assert all(0 <= f < len(frame_times) for f in frames)
    for s in samples:
        # the last frame whose presentation time is <= t
        assert frame_times[s.frame] <= s.time + EPS
        assert s.frame == len(frame_times) - 1 or frame_times[s.frame + 1] > s.time + EPS
    # Every requested instant is served by one of the chosen frames.
    chosen = set(frames)
    for t in times:
        idx = int(np.searchsorted(frame_times, t + EPS, side="right")) - 1
        assert max(idx, 0) in chosen


def _within(a: np.ndarray, b: np.ndarray) -> bool:
    """Every value of ``a`` is within EPS of some value of sorted ``b``."""
    if len(a) == 0:
        return True
    if len(b) == 0:
        return False
    b = np.sort(b)
    pos = np.clip(np.searchsorted(b, a), 1, len(b) - 1) if len(b) > 1 else np.zeros(len(a), int)
    nearest = np.minimum(np.abs(b[pos] - a), np.abs(b[np.maximum(pos - 1, 0)] - a))
    return bool(np.all(nearest <= EPS))


@FAST
@given(durations, steps, st.floats(0, 600), st.floats(0, 600))
def test_head_tail_is_the_union_of_both_windows(duration, every, head, tail):
    assume(head > 0 or tail > 0)
    got = head_tail_times(duration, head=head, tail=tail, every=every)
    parts = []
    if head > 0:
        parts.append(interval_times(duration, every=every, start=0.0, end=min(head, duration)))
    if tail > 0 and duration - tail < duration:
        parts.append(interval_times(duration, every=every, start=max(0.0, duration - tail)))
    union = np.concatenate(parts) if parts else np.empty(0)
    assert np.all(np.diff(got) > EPS), "sorted, no instant twice"
    assert np.all((got >= 0) & (got < duration))
    assert _within(union, got), "an instant of a window is missing"
    assert _within(got, union), "an instant outside both windows"
    if head >= duration or tail >= duration:  # overlap covers the video: no frame twice
        samples = samples_for(np.arange(0, duration, 0.04), got)
        assert len({s.frame for s in samples}) == len(samples)


# ----------------------------------------------------------------- decode plan


@st.composite
def videos_and_wants(draw):
    frame_times = draw(frame_tables(max_frames=600))
    n = len(frame_times)
    keys = sorted({0, *draw(st.lists(st.integers(0, n - 1), max_size=30))})
    wanted = draw(st.lists(st.integers(0, n - 1), min_size=0, max_size=80))
    size = draw(st.sampled_from([(64, 48), (1280, 720), (3840, 2160)]))
    info = VideoInfo(
        path=Path("/nonexistent.mp4"),
        codec="h264",
        width=size[0],
        height=size[1],
        rotation=0,
        container_start=0.0,
        first_pts=0.0,
        frame_times=frame_times,
        keyframes=np.asarray(keys, dtype=np.int64),
        duration=float(frame_times[-1]) + 0.04,
        nominal_fps=25.0,
        avg_fps=25.0,
        variable_frame_rate=True,
    )
    return info, wanted, draw(st.integers(1, 4))


@FAST
@given(videos_and_wants())
def test_plan_segments_covers_each_wanted_frame_once_from_a_keyframe(case):
    info, wanted, workers = case
    segments = plan_segments(info, wanted, workers=workers)
    targets = [t for s in segments for t in s.targets]
    assert sorted(targets) == sorted(set(wanted)), "every wanted frame exactly once"
    keys = set(info.keyframes.tolist())
    previous_end = -1
    for seg in segments:
        assert seg.start in keys, "a run starts at a keyframe"
        assert seg.start <= seg.targets[0]
        assert list(seg.targets) == sorted(set(seg.targets))
        assert seg.start > previous_end, "runs are sorted and do not overlap"
        previous_end = seg.end


# ----------------------------------------------------------------- clustering


def _popcount_distance(a: np.ndarray, b: np.ndarray) -> int:
    return sum(int(x ^ y).bit_count() for x, y in zip(a.tolist(), b.tolist(), strict=True))


@st.composite
def hash_sets(draw):
    """Hashes built as noisy variants of a few bases, so clusters form."""
    n_bases = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bases = rng.integers(0, 2**63, size=(n_bases, 1), dtype=np.uint64)
    n = draw(st.integers(1, 60))
    picks = rng.integers(0, n_bases, size=n)
    flips = rng.integers(0, 20, size=n)
    hashes = bases[picks].copy()
    for i in range(n):
        for bit in rng.choice(64, size=flips[i], replace=False):
            hashes[i, 0] ^= np.uint64(1) << np.uint64(bit)
    # Capture times with ties (stills of two videos at the same second), so
    # the order also rests on the names; quality with ties too.
    times = rng.integers(0, max(1, n // 2), size=n).astype(float)
    names = [f"still{k}.jpg" for k in rng.permutation(n)]
    quality = rng.integers(0, 4, size=(n, 2)).astype(float)
    return hashes, times, names, quality, draw(st.integers(0, 20))


def _capture_order(times, names) -> np.ndarray:
    keys = [(t, natural_key(name)) for t, name in zip(times.tolist(), names, strict=True)]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def _by_name(result, order, names) -> tuple[dict[str, frozenset], dict[str, bool]]:
    """Each item's cluster (as the set of member names) and kept flag, by name."""
    members: dict[int, set] = {}
    for pos, item in enumerate(order.tolist()):
        members.setdefault(int(result.cluster[pos]), set()).add(names[item])
    groups, kept = {}, {}
    for pos, item in enumerate(order.tolist()):
        groups[names[item]] = frozenset(members[int(result.cluster[pos])])
        kept[names[item]] = bool(result.kept[pos])
    return groups, kept


@FAST
@given(
    hash_sets(),
    st.sampled_from(["global", "sequential"]),
    st.sampled_from(["first", "sharpest", "largest"]),
    st.randoms(),
)
def test_clustering_invariants(case, mode, keep, rnd):
    hashes, times, names, quality, threshold = case
    order = _capture_order(times, names)
    q = None if keep == "first" else (quality[:, 0] if keep == "sharpest" else quality)
    result = cluster_hashes(
        hashes[order], threshold=threshold, mode=mode, keep=keep,
        quality=None if q is None else q[order],
    )  # fmt: skip
    n = len(hashes)
    # Every cluster keeps exactly one image; no image both kept and moved.
    for c in range(result.n_clusters):
        assert int(np.sum(result.kept[result.cluster == c])) == 1
    assert np.all(result.kept == (result.kept_index == np.arange(n)))
    assert np.all(result.cluster[result.kept_index] == result.cluster)
    # Each duplicate within the threshold of its kept image, whatever the
    # keep policy (no chaining through a re-chosen keeper).
    for i in range(n):
        d = _popcount_distance(hashes[order][i], hashes[order][result.kept_index[i]])
        assert d == result.distance[i] <= threshold
    if mode == "global" and keep == "first":  # kept images pairwise beyond threshold
        kept = np.flatnonzero(result.kept)
        for a in kept:
            for b in kept:
                if a < b:
                    assert _popcount_distance(hashes[order][a], hashes[order][b]) > threshold
    # The same items arriving in another order (another directory listing)
    # give the same clusters and kept images, item by item.
    perm = np.array(rnd.sample(range(n), n), dtype=np.int64)
    p_hashes, p_times, p_quality = hashes[perm], times[perm], quality[perm]
    p_names = [names[k] for k in perm.tolist()]
    order2 = _capture_order(p_times, p_names)
    p_q = None if keep == "first" else (p_quality[:, 0] if keep == "sharpest" else p_quality)
    again = cluster_hashes(
        p_hashes[order2], threshold=threshold, mode=mode, keep=keep,
        quality=None if p_q is None else p_q[order2],
    )  # fmt: skip
    assert _by_name(again, order2, p_names) == _by_name(result, order, names)


# ----------------------------------------------------------------- undo(dedup(x))


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=25),
    st.sampled_from(["global", "sequential"]),
    st.sampled_from(["first", "sharpest", "largest"]),
)
def test_undo_of_dedup_restores_the_folder(tmp_path, picks, mode, keep):
    from PIL import Image

    folder = tmp_path / "imgs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    rng = np.random.default_rng(len(picks))
    bases = [(rng.random((6, 6, 3)) * 255).astype(np.uint8) for _ in range(6)]
    for i, b in enumerate(picks):
        img = bases[b].repeat(8, 0).repeat(8, 1)
        img = np.clip(img.astype(int) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"im_{i:03d}.png")
    before = _tree(folder)
    dedup_folders([folder], mode=mode, keep=keep)
    after = _tree(folder)
    moved = [k for k in after if k.startswith("duplicates/")]
    assert len({k for k in before} - {k for k in after}) == len(moved)
    report = undo_folder(folder)
    assert not report.failed
    restored = {k: v for k, v in _tree(folder).items() if k != "dedup.csv" and "cache" not in k}
    assert restored == before

"""VideoReader's prefetch: decodes ahead while reads step forward, exact and bounded."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core.video_reader import DEFAULT_CACHE_BYTES, VideoReader

FRAME_BYTES = 160 * 120 * 3


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("prefetch ")]


@pytest.fixture(scope="module")
def reference(indexed_video: Path) -> list[np.ndarray]:
    return synthetic.decode_all(indexed_video)


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_stepping_forward_prefetches_the_next_frames(
    backend: str, indexed_video: Path, reference: list[np.ndarray]
) -> None:
    with VideoReader(indexed_video, backend=backend, prefetch=6) as video:
        video.read(40)
        video.read(41)
        _wait_for(lambda: video.stats.frames_prefetched == 6)
        time.sleep(0.05)
        assert video.stats.frames_prefetched == 6  # bounded: 42..47, no further
        decoded = video.stats.frames_decoded
        assert decoded == 1 + 1 + 6  # frame 40 from its keyframe, 41, then 42..47
        for i in range(42, 48):
            np.testing.assert_array_equal(video.read(i), reference[i])
        # Each read stepped forward: the prefetch stays 6 ahead of the last one.
        _wait_for(lambda: video._cursor.next_index == 48 + 6)
        assert video.stats.cache_hits == 6
        assert video.stats.streams_started == 1
        for i in range(48, 250):  # the whole rest, stepping: exact, one decoder
            np.testing.assert_array_equal(video.read(i), reference[i])
        assert video.stats.streams_started == 1
        assert video.cached_bytes <= DEFAULT_CACHE_BYTES


def test_random_jumps_start_no_prefetch(indexed_video: Path) -> None:
    with VideoReader(indexed_video, prefetch=8) as video:
        for i in (100, 3, 200, 60, 150):
            assert synthetic.decode_index(video.read(i)) == i
        time.sleep(0.05)
        assert video.stats.frames_prefetched == 0
        assert not video._prefetcher.running


def test_a_jump_ends_the_prefetch(indexed_video: Path, reference: list[np.ndarray]) -> None:
    # The prefetch only continues the decoder the reads use: after a jump
    # away from the frames it was decoding, it decodes nothing more.
    with VideoReader(indexed_video, prefetch=8) as video:
        video.read(40)
        video.read(41)  # a step: the prefetch starts on 42...
        np.testing.assert_array_equal(video.read(200), reference[200])
        time.sleep(0.1)
        prefetched = video.stats.frames_prefetched
        assert prefetched <= 8
        assert video._cursor.next_index == 201  # nothing decoded past the jump
        time.sleep(0.05)
        assert video.stats.frames_prefetched == prefetched


def test_prefetch_is_bounded_by_the_cache(indexed_video: Path) -> None:
    with VideoReader(indexed_video, cache_bytes=8 * FRAME_BYTES, prefetch=100) as video:
        for i in range(10, 20):
            video.read(i)
        _wait_for(lambda: video._cursor.next_index == 20 + 2)  # a quarter of 8 frames
        time.sleep(0.05)
        assert video._cursor.next_index == 22
        assert video.cached_bytes <= 8 * FRAME_BYTES
    with VideoReader(indexed_video, cache_bytes=0) as video:  # no cache, no prefetch
        for i in range(10, 20):
            video.read(i)
        assert video.stats.frames_prefetched == 0
        assert not video._prefetcher.running


def test_close_stops_the_prefetch_thread(indexed_video: Path) -> None:
    before = len(_prefetch_threads())
    video = VideoReader(indexed_video, prefetch=8)
    video.read(0)
    video.read(1)
    assert video._prefetcher.running
    assert len(_prefetch_threads()) == before + 1
    video.close()
    assert not video._prefetcher.running
    assert len(_prefetch_threads()) == before
    with pytest.raises(ValueError, match="closed"):
        video.read(2)


def test_threads_stepping_and_jumping_get_exact_frames(
    indexed_video: Path, reference: list[np.ndarray]
) -> None:
    """napari slices asynchronously: reads from several threads during prefetch."""
    errors: list[str] = []
    with VideoReader(indexed_video, prefetch=8) as video:

        def stepper(start: int) -> None:
            for i in range(start, start + 60):
                if not np.array_equal(video.read(i), reference[i]):
                    errors.append(f"frame {i}")

        def jumper(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(15):
                i = rng.randrange(250)
                if not np.array_equal(video.read(i), reference[i]):
                    errors.append(f"frame {i}")

        threads = [threading.Thread(target=stepper, args=(s,)) for s in (0, 120)]
        threads += [threading.Thread(target=jumper, args=(s,)) for s in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert video.stats.frames_decoded > 0
    assert errors == []
    assert not video._prefetcher.running

"""The reader's frame cache: bounded in bytes, whatever its entries hold."""

from __future__ import annotations

import numpy as np
import pytest

from napari_video_extract.core.frame_cache import FrameCache
from napari_video_extract.core.rgb_frames import UnconvertedFrame

av = pytest.importorskip("av")

W, H = 64, 48
RGB = W * H * 3


def _rgb(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


def _decoder_frame(index: int, fmt: str) -> UnconvertedFrame:
    return UnconvertedFrame(index, index / 25, av.VideoFrame(W, H, fmt))


def test_least_recently_used_frames_go_first() -> None:
    cache = FrameCache(3 * RGB, RGB)
    for i in range(3):
        cache.put(i, _rgb(i))
    assert cache.get(0) is not None  # 0 is now the most recently used
    cache.put(3, _rgb(3))
    assert cache.get(1) is None
    assert [int(cache.get(i)[0, 0, 0]) for i in (0, 2, 3)] == [0, 2, 3]
    assert cache.nbytes == 3 * RGB


def test_decoder_frames_bigger_than_rgb_count_for_their_size() -> None:
    # 10-bit 4:4:4 takes 6 bytes a pixel, twice an RGB frame.
    big = _decoder_frame(0, "yuv444p10le")
    assert big.nbytes >= 2 * RGB
    cache = FrameCache(3 * RGB, RGB)
    cache.put(0, big)
    cache.put(1, _decoder_frame(1, "yuv444p10le"))
    assert len(cache) == 1 and cache.get(0) is None  # two would not fit
    assert cache.nbytes <= 3 * RGB
    small = _decoder_frame(2, "yuv420p")  # half an RGB frame: counts as one
    cache.put(2, small)
    assert cache.nbytes == big.nbytes + RGB <= 3 * RGB


def test_a_converted_frame_takes_its_unconverted_place() -> None:
    cache = FrameCache(4 * RGB, RGB)
    frame = _decoder_frame(5, "yuv444p10le")
    cache.put(5, frame)
    cache.put(6, _rgb(6))
    cache.replace(5, frame, _rgb(5))
    assert cache.nbytes == 2 * RGB
    assert int(cache.get(5)[0, 0, 0]) == 5
    cache.replace(6, frame, _rgb(0))  # frame 6 is not that frame: kept
    assert int(cache.get(6)[0, 0, 0]) == 6
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_a_cache_smaller_than_a_frame_keeps_nothing() -> None:
    cache = FrameCache(RGB - 1, RGB)
    cache.put(0, _rgb(0))
    assert len(cache) == 0 and cache.nbytes == 0

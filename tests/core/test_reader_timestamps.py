"""The reader's start is the first packet, whatever its timestamp.

MPEG-TS timestamps are 33-bit and wrap every 26.5 hours; a recording that
crosses the wrap starts below 0 once libavformat unwraps it. An edit list can
also put the first packets before time 0. Seeking "to time 0" then lands
mid-stream; every frame must still be reachable, in any order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core.probe import probe
from napari_video_extract.core.video_reader import VideoReader, pyav_available

BACKENDS = ["ffmpeg", *(["pyav"] if pyav_available() else [])]
#: 2**33 ticks of 90 kHz, in seconds: where MPEG-TS timestamps wrap.
TS_WRAP_SECONDS = 2**33 / 90_000


@pytest.fixture(scope="module")
def wrapping_ts(tmp_path_factory) -> Path:
    """200 frames whose timestamps wrap 2 s in (the stream starts at about -2.3 s)."""
    path = tmp_path_factory.mktemp("wrap") / "wrapping.ts"
    offset = TS_WRAP_SECONDS - 3.7  # plus the muxer's 1.4 s delay: 2.3 s before the wrap
    return synthetic.make_cfr(
        path, frames=200, extra=["-f", "mpegts", "-output_ts_offset", f"{offset:.6f}"]
    )


@pytest.fixture(scope="module")
def edit_list_mp4(tmp_path_factory) -> Path:
    """An mp4 whose edit list starts its first 25 packets before time 0 (not shown)."""
    path = tmp_path_factory.mktemp("editlist") / "negative_start.mp4"
    return synthetic.make_cfr(path, frames=100, extra=["-output_ts_offset", "-1"])


def test_wrapping_ts_fixture_really_starts_below_zero(wrapping_ts):
    info = probe(wrapping_ts)
    assert info.first_pts < -1.0
    assert info.frame_count == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_frame_of_a_wrapping_ts(wrapping_ts, backend):
    with VideoReader(wrapping_ts, backend=backend, cache_bytes=0) as video:
        first = [synthetic.decode_index(video.read(i)) for i in range(100)]
        assert first == list(range(100))
        order = [150, 0, 57, 58, 1, 199, 12, 0]
        assert [synthetic.decode_index(video.read(i)) for i in order] == order
        assert [synthetic.decode_index(img) for img in video.iter(stop=30)] == list(range(30))


@pytest.mark.parametrize("backend", BACKENDS)
def test_edit_list_start_matches_a_plain_decode(edit_list_mp4, backend):
    expected = synthetic.decode_all(edit_list_mp4)  # the frames a player shows
    with VideoReader(edit_list_mp4, backend=backend, cache_bytes=0) as video:
        assert len(video) == len(expected)
        for i in [40, 0, 1, 60, 0, len(expected) - 1, 2]:
            np.testing.assert_array_equal(video.read(i), expected[i], err_msg=f"frame {i}")
        got = [synthetic.decode_index(img) for img in video.iter(stop=10)]
        assert got == [synthetic.decode_index(img) for img in expected[:10]]

"""The Matroska block-header reader gives exactly the packet listing's frame table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core import ffmpeg_probe
from napari_video_extract.core.mkvindex import read_mkv_frame_table
from napari_video_extract.core.probe import probe

_LAVFI = ["-f", "lavfi", "-i"]
_SRC = "testsrc=size=160x120:rate=25"


def _same_as_packet_listing(path: Path, stream: int = 0) -> int:
    table = read_mkv_frame_table(path, stream=stream)
    assert table is not None
    ticks, keyframe, durations, time_base = ffmpeg_probe.list_packets(path, 60)
    assert table.time_base == time_base
    np.testing.assert_array_equal(table.ticks, ticks)
    np.testing.assert_array_equal(table.keyframe, keyframe)
    np.testing.assert_array_equal(table.durations, durations)
    return len(table.ticks)


@pytest.fixture(scope="module")
def mkvs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mkv")
    paths = {name: folder / name for name in ("bframes.mkv", "drops.webm", "audio_first.mkv")}
    x264 = ["-c:v", "libx264", "-bf", "2", "-g", "12"]
    synthetic.run([*_LAVFI, _SRC, "-t", "4", *x264, str(paths["bframes.mkv"])])
    drops = f"{_SRC},select='not(between(n\\,20\\,26))'"
    vp8 = ["-frames:v", "60", "-c:v", "libvpx", "-fps_mode", "passthrough"]
    synthetic.run([*_LAVFI, drops, *vp8, str(paths["drops.webm"])])
    # Video second, after an Opus track (which has a codec delay), and a start offset.
    maps = ["-t", "3", "-map", "0:a", "-map", "1:v", "-c:a", "libopus", "-c:v", "libx264"]
    offset = ["-bf", "2", "-output_ts_offset", "1.5", str(paths["audio_first.mkv"])]
    synthetic.run([*_LAVFI, "sine", *_LAVFI, _SRC, *maps, *offset])
    return paths


def test_bframes_vfr_and_a_second_track(mkvs):
    assert _same_as_packet_listing(mkvs["bframes.mkv"]) == 100
    assert _same_as_packet_listing(mkvs["drops.webm"]) == 60
    assert read_mkv_frame_table(mkvs["audio_first.mkv"], stream=0) is None  # audio
    assert _same_as_packet_listing(mkvs["audio_first.mkv"], stream=1) == 75
    info = probe(mkvs["audio_first.mkv"], cache=False)
    assert info.frame_count == 75 and info.first_pts == pytest.approx(1.5, abs=0.05)


def test_real_clip(media_dir):
    assert _same_as_packet_listing(media_dir / "bbb_720p_vp8_30s.webm") == 720


def test_the_probe_uses_the_block_headers(mkvs, monkeypatch):
    def no_scan(path, timeout):
        raise AssertionError("packets listed")

    monkeypatch.setattr(ffmpeg_probe, "list_packets", no_scan)
    assert probe(mkvs["bframes.mkv"], cache=False).frame_count == 100


def test_anything_unusual_gives_none(mkvs, tmp_path, cfr_video):
    data = mkvs["bframes.mkv"].read_bytes()
    assert read_mkv_frame_table(cfr_video, stream=0) is None  # an MP4
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])  # a cluster runs past the end
    assert read_mkv_frame_table(cut, stream=0) is None
    assert probe(cut, cache=False).frame_count > 0  # the packet listing still works
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(data[:40] + bytes(range(256)) * 8)
    assert read_mkv_frame_table(junk, stream=0) is None
    assert read_mkv_frame_table(mkvs["bframes.mkv"], stream=3) is None

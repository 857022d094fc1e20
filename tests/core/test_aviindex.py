"""The AVI idx1 reader gives exactly the frame table that listing the packets gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core import ffmpeg_probe
from napari_video_extract.core.aviindex import read_avi_frame_table
from napari_video_extract.core.probe import probe

_LAVFI = ["-f", "lavfi", "-i"]


def _same_as_packet_listing(path: Path, stream: int = 0) -> int:
    table = read_avi_frame_table(path, stream=stream)
    assert table is not None
    ticks, keyframe, _durations, time_base = ffmpeg_probe.list_packets(path, 60)
    # Same instants (the time bases may be written differently).
    np.testing.assert_array_equal(
        table.ticks * table.time_base.numerator * time_base.denominator,
        ticks * time_base.numerator * table.time_base.denominator,
    )
    np.testing.assert_array_equal(table.keyframe, keyframe)
    return len(table.ticks)


@pytest.fixture(scope="module")
def avis(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("avi")
    src = "testsrc=size=160x120:rate=25"
    made = {
        "bframes": ["-t", "4", "-c:v", "mpeg4", "-bf", "2", "-g", "12"],
        # Frames 20-26 left out, timestamps kept: AVI writes empty "drop" chunks.
        "drops": [
            "-frames:v", "60", "-c:v", "mpeg4", "-bf", "2",
            "-fps_mode", "passthrough", "-enc_time_base", "1/25",
        ],
    }  # fmt: skip
    paths = {}
    for name, args in made.items():
        graph = src + (",select='not(between(n\\,20\\,26))'" if name == "drops" else "")
        paths[name] = folder / f"{name}.avi"
        synthetic.run([*_LAVFI, graph, *args, str(paths[name])])
    paths["audio_first"] = folder / "audio_first.avi"
    maps = ["-t", "3", "-map", "0:a", "-map", "1:v", "-c:a", "mp3", "-c:v", "libx264"]
    synthetic.run([*_LAVFI, "sine", *_LAVFI, src, *maps, "-bf", "2", str(paths["audio_first"])])
    return paths


def test_bframes_and_drop_chunks(avis):
    assert _same_as_packet_listing(avis["bframes"]) == 100
    table = read_avi_frame_table(avis["drops"], stream=0)
    assert np.diff(table.ticks).max() > 1  # really has a gap of dropped ticks
    assert _same_as_packet_listing(avis["drops"]) == 60


def test_video_after_an_audio_stream(avis):
    assert read_avi_frame_table(avis["audio_first"], stream=0) is None  # audio
    assert _same_as_packet_listing(avis["audio_first"], stream=1) == 75
    assert probe(avis["audio_first"], cache=False).frame_count == 75


@pytest.mark.parametrize(
    "name", ["megamind_xvid_cuts.avi", "tree_cinepak.avi", "vtest_surveillance_msmpeg4.avi"]
)
def test_real_clips(media_dir, name):
    assert _same_as_packet_listing(media_dir / name) > 60


def test_the_probe_uses_the_index(avis, monkeypatch):
    def no_scan(path, timeout):
        raise AssertionError("packets listed")

    monkeypatch.setattr(ffmpeg_probe, "list_packets", no_scan)
    assert probe(avis["bframes"], cache=False).frame_count == 100


def test_anything_unusual_gives_none(avis, tmp_path, cfr_video):
    data = avis["bframes"].read_bytes()
    assert read_avi_frame_table(cfr_video, stream=0) is None  # an MP4
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # no idx1 any more
    assert read_avi_frame_table(cut, stream=0) is None
    assert probe(cut, cache=False).frame_count > 0  # the packet listing still works
    # An index pointing past the end of the file.
    pos = data.rindex(b"idx1") + 8
    bad = bytearray(data)
    bad[pos + 8 : pos + 12] = (2**31).to_bytes(4, "little")
    hostile = tmp_path / "hostile.avi"
    hostile.write_bytes(bytes(bad))
    assert read_avi_frame_table(hostile, stream=0) is None
    # A second RIFF part (OpenDML): idx1 does not list its chunks.
    longer = tmp_path / "odml.avi"
    longer.write_bytes(data + b"RIFF" + (4).to_bytes(4, "little") + b"AVIX")
    assert read_avi_frame_table(longer, stream=0) is None
    assert read_avi_frame_table(avis["bframes"], stream=5) is None

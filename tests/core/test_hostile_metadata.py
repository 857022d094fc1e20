"""A file's own metadata is never read as a fact about the file.

ffmpeg's log prints the file's title, comment, encoder, stream tags and
chapter titles next to the facts (stream line, start time, display matrix,
frame timestamps). Here every one of those fields imitates a fact; the probe,
the stills and the reader frames must be those of the real stream: 160 x 120
as displayed, 25 fps, frame i shows i.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import synthetic
from napari_video_extract.core.decode import FrameStream, decode_frames
from napari_video_extract.core.probe import probe
from napari_video_extract.core.video_reader import VideoReader, pyav_available

BACKENDS = ["ffmpeg", *(["pyav"] if pyav_available() else [])]
CHECKED = [0, 1, 10, 49, 50, 75, 99]


@pytest.fixture(scope="module", params=["mkv-upright", "mp4-upright", "mkv-90", "mp4-90"])
def hostile_video(request, tmp_path_factory) -> tuple[Path, int]:
    suffix, kind = request.param.split("-")
    work = tmp_path_factory.mktemp("hostile")
    rotated = kind == "90"
    path = synthetic.make_hostile_metadata(work / f"hostile.{suffix}", work, rotated=rotated)
    return path, 90 if rotated else 0


def _indices(images: dict[int, object]) -> dict[int, int]:
    return {i: synthetic.decode_index(img) for i, img in images.items()}


def test_probe_facts_come_from_the_stream(hostile_video):
    path, rotation = hostile_video
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (160, 120, rotation)
    assert info.codec == "h264"
    assert info.frame_count == 100
    assert info.first_pts == 0.0 and info.container_start == 0.0
    assert info.nominal_fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(4.0, abs=1e-6)


def test_stills_are_the_wanted_frames(hostile_video):
    path, _ = hostile_video
    info = probe(path)
    frames = {f.index: f.image for f in decode_frames(info, CHECKED, workers=2)}
    assert sorted(frames) == CHECKED
    assert all(img.shape == (120, 160, 3) for img in frames.values())
    assert _indices(frames) == {i: i for i in CHECKED}


@pytest.mark.parametrize("backend", BACKENDS)
def test_reader_frames_are_the_wanted_frames(hostile_video, backend):
    path, _ = hostile_video
    with VideoReader(path, backend=backend, cache_bytes=0) as video:
        assert video.shape == (100, 120, 160, 3)
        order = [50, 0, 99, 10, 1, 49, 75]
        assert {i: synthetic.decode_index(video.read(i)) for i in order} == {i: i for i in order}


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_real_display_matrix_after_a_dozen_stream_tags(tmp_path, suffix):
    """Harmless tags, but so many that the rotation is printed far below the stream line."""
    path = synthetic.make_hostile_metadata(
        tmp_path / f"tagged{suffix}", tmp_path, rotated=True, stream_tags=12, text="a note"
    )
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (160, 120, 90)
    frames = {f.index: f.image for f in decode_frames(info, [0, 37, 99], workers=1)}
    assert _indices(frames) == {0: 0, 37: 37, 99: 99}  # upright, not sideways


def test_metadata_never_becomes_an_error_reason(hostile_video):
    """ffmpeg logs only errors, so the file's text cannot pose as the reason."""
    path, _ = hostile_video
    info = probe(path)
    with FrameStream(info, 0, (99,), seek=False) as stream:
        assert [f.index for f in stream] == [99]
        reason = stream.error_text()
    assert "pts_time" not in reason and "Stream #" not in reason, reason

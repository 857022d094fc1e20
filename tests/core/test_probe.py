"""probe(): real frame count, timestamps, start time, VFR, rotation, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core import ffmpeg_probe
from napari_video_extract.core.decode import decode_frames
from napari_video_extract.core.errors import NotAVideoError, VideoOpenError
from napari_video_extract.core.probe import probe


def test_cfr_with_bframes_frame_table(cfr_video):
    _dts, pts = synthetic.packet_timestamps(cfr_video)
    assert (np.diff(pts) < 0).any(), "fixture must really have reordered (B-)frames"
    info = probe(cfr_video)
    assert info.frame_count == 100 == synthetic.count_decoded_frames(cfr_video)
    np.testing.assert_allclose(info.frame_times, np.arange(100) * 0.04, atol=1e-6)
    assert info.codec == "h264"
    assert (info.width, info.height, info.rotation) == (160, 120, 0)
    assert info.container_start == 0.0 and info.first_pts == 0.0
    assert info.duration == pytest.approx(4.0, abs=1e-6)
    assert info.nominal_fps == pytest.approx(25.0)
    assert info.avg_fps == pytest.approx(25.0)
    assert info.variable_frame_rate is False
    assert info.keyframes.tolist() == list(range(0, 100, 12))


def test_vfr_frame_times_are_the_real_ones(vfr_video):
    path, true_times = vfr_video
    info = probe(path)
    assert info.frame_count == len(true_times) == synthetic.count_decoded_frames(path)
    np.testing.assert_allclose(info.frame_times, true_times, atol=1e-6)
    gaps = np.diff(info.frame_times)
    assert gaps.max() / gaps.min() > 5  # really irregular
    assert info.variable_frame_rate is True


def test_nonzero_container_start(ts_video):
    info = probe(ts_video)
    assert info.container_start == pytest.approx(1.4, abs=0.1)
    assert info.first_pts >= info.container_start - 1e-6
    # Public times stay relative to the first frame.
    assert info.frame_times[0] == 0.0
    np.testing.assert_allclose(info.frame_times, np.arange(100) * 0.04, atol=1e-4)
    np.testing.assert_allclose(info.frame_pts, info.first_pts + info.frame_times)


def test_rotation_gives_display_size(rotated_video):
    info = probe(rotated_video)
    assert info.rotation in (90, 270)
    # Stored 120 wide x 160 high; shown upright as 160 x 120.
    assert (info.width, info.height) == (160, 120)
    assert info.frame_count == 50


def test_audio_track_does_not_disturb_video(audio_video):
    info = probe(audio_video)
    assert info.frame_count == 75
    assert info.codec == "h264"
    np.testing.assert_allclose(info.frame_times, np.arange(75) * 0.04, atol=1e-6)


def test_as_dict_is_json_ready(cfr_video):
    import json

    d = json.loads(json.dumps(probe(cfr_video).as_dict()))
    assert d["frame_count"] == 100
    assert d["start_time"] == 0.0
    assert d["variable_frame_rate"] is False
    assert d["keyframe_count"] == 9
    assert d["path"] == str(cfr_video.resolve())


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("text", VideoOpenError),
        ("empty", VideoOpenError),
        ("truncated", VideoOpenError),
        ("audio_m4a", NotAVideoError),
        ("audio_mp4", NotAVideoError),
        ("hls", VideoOpenError),
        ("ffconcat", VideoOpenError),
        ("missing", VideoOpenError),
    ],
)
def test_bad_input_one_line_error_naming_the_file(bad_files, kind, error):
    path = bad_files[kind]
    with pytest.raises(error) as excinfo:
        probe(path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(path.resolve()) + ": ")
    assert excinfo.value.reason  # a reason, not just the name


def test_folder_is_not_a_video(videos_dir):
    with pytest.raises(VideoOpenError, match="folder"):
        probe(videos_dir)


@pytest.mark.parametrize("kind", ["hls", "ffconcat"])
def test_playlist_disguised_as_mp4_does_not_open_the_target(bad_files, cfr_video, kind):
    # The target is a perfectly good video: if ffmpeg followed the playlist,
    # probe would succeed and report the target's 100 frames.
    assert probe(cfr_video).frame_count == 100
    with pytest.raises(VideoOpenError) as excinfo:
        probe(bad_files[kind])
    assert excinfo.value.path == bad_files[kind].resolve()
    assert "100" not in excinfo.value.reason


@pytest.mark.parametrize("name", ["-i.mp4", "with space.mp4", "vidéo_日本.mp4", "http:x.mp4"])
def test_odd_file_names_are_plain_files(cfr_video, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(cfr_video.read_bytes())
    info = probe(path)
    assert info.frame_count == 100
    assert info.path.name == name


# --------------------------------------------------------------------------- real clips

# name -> (frames a full decode yields, codec, display size, container start)
REAL_CLIPS = {
    "bbb_720p_h264_5s.mp4": (132, "h264", (1280, 720), 0.0),
    "bbb_720p_vp8_30s.webm": (720, "vp8", (1280, 720), 0.0),
    "megamind_xvid_cuts.avi": (270, "mpeg4", (720, 528), 0.0),
    "tree_cinepak.avi": (68, "cinepak", (320, 240), 0.0),
    "city_cc0_mpeg2.mpg": (190, "mpeg2video", (720, 405), 0.54),
}


@pytest.mark.media
@pytest.mark.parametrize("name", sorted(REAL_CLIPS))
def test_real_clip_frame_count_equals_decoded(media_dir, name):
    frames, codec, size, start = REAL_CLIPS[name]
    path = media_dir / name
    info = probe(path)
    assert info.frame_count == frames
    assert synthetic.count_decoded_frames(path) == frames  # the ground truth, decoded
    assert info.codec == codec
    assert (info.width, info.height) == size
    assert info.container_start == pytest.approx(start, abs=1e-3)
    assert np.all(np.diff(info.frame_times) > 0)
    assert info.frame_times[0] == 0.0


@pytest.mark.media
def test_tree_cinepak_is_not_the_header_count(media_dir):
    # The AVI header implies 444 frames at 15 fps; 376 packets are empty.
    info = probe(media_dir / "tree_cinepak.avi")
    assert info.frame_count == 68
    # The header says 66667 us per frame (14.99993 fps), which ffmpeg prints as "15 fps".
    assert info.nominal_fps == pytest.approx(15.0, abs=1e-3)
    assert info.duration == pytest.approx(29.6, abs=0.1)
    assert info.variable_frame_rate is True


@pytest.mark.media
def test_city_start_time(media_dir):
    info = probe(media_dir / "city_cc0_mpeg2.mpg")
    assert info.container_start == pytest.approx(0.54, abs=1e-3)
    assert info.first_pts == pytest.approx(0.54, abs=1e-3)
    assert info.duration == pytest.approx(7.6, abs=0.05)


@pytest.fixture(scope="module")
def first_pts_videos(tmp_path_factory, cfr_video, vfr_video, rotated_video, audio_video):
    """Videos in the containers whose frame 0 time the probe reads in process."""
    d = tmp_path_factory.mktemp("first_pts")
    return [
        cfr_video,
        vfr_video[0],
        rotated_video,
        audio_video,
        synthetic.make_cfr(d / "late.mp4", frames=30, extra=["-output_ts_offset", "2.5"]),
        synthetic.make_cfr(d / "edit_list.mp4", frames=30, extra=["-output_ts_offset", "-1"]),
        synthetic.make_cfr(d / "late.mkv", frames=30, extra=["-output_ts_offset", "1.5"]),
        synthetic.make_cfr(d / "early.mkv", frames=30, extra=["-output_ts_offset", "-1"]),
    ]


@pytest.fixture(scope="module")
def avi_videos(tmp_path_factory) -> list[Path]:
    """AVI files where PyAV's first frame time is not the executable's frame 0 (H.264),
    and one where it is (MPEG-4 part 2 with B-frames, 1 tick late; ffmpeg's
    encoder does not pack them: ``test_avi_frames.py`` has real packed ones)."""
    d = tmp_path_factory.mktemp("first_pts_avi")
    packed_b = d / "packed_b.avi"
    lavfi = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "2"]
    synthetic.run([*lavfi, "-c:v", "mpeg4", "-bf", "2", "-g", "12", str(packed_b)])
    make = synthetic.make_cfr
    no_b, late = ["-bf", "0"], ["-output_ts_offset", "1"]
    return [
        make(d / "h264_b.avi", frames=50),
        make(d / "h264.avi", frames=50, extra=no_b),
        make(d / "h264_late.avi", frames=50, extra=[*no_b, *late]),
        packed_b,
    ]


def _frame_0_times_in_process(paths, monkeypatch) -> dict[str, float]:
    """Probe ``paths`` with no ffmpeg process allowed; check frame 0's time is the
    executable's (asked first); the names and times of those not at 0."""
    from napari_video_extract.core import probe as probe_module

    expected = {p: ffmpeg_probe.first_frame_pts(p, 30.0) for p in paths}

    def no_ffmpeg(*args, **kwargs):
        raise AssertionError(f"ffmpeg ran: {args}")

    monkeypatch.setattr(ffmpeg_probe, "run_ffmpeg", no_ffmpeg)
    for path, first_pts in expected.items():
        info = probe(path, cache=False)
        assert info.container in probe_module.FIRST_PTS_FROM_PYAV
        assert info.first_pts == first_pts, path.name
    return {p.name: t for p, t in expected.items() if t != 0}


def test_frame_0_time_in_process_is_the_executables(first_pts_videos, monkeypatch):
    """MP4/MOV and Matroska/WebM: frame 0's time comes from PyAV's first frame,
    equal to what the ffmpeg executable reports, and no ffmpeg process runs."""
    late = _frame_0_times_in_process(first_pts_videos, monkeypatch)
    assert late.keys() == {"late.mp4", "late.mkv"}, "fixtures must start late"


@pytest.mark.media
def test_frame_0_time_in_process_on_real_clips(media_dir, monkeypatch):
    paths = [media_dir / "bbb_720p_h264_5s.mp4", media_dir / "bbb_720p_vp8_30s.webm"]
    late = _frame_0_times_in_process(paths, monkeypatch)
    assert late.keys() == {"bbb_720p_vp8_30s.webm"}


def test_avi_frame_0_time_is_the_executables(avi_videos):
    """AVI: frame 0's time is the executable's, also where PyAV's first frame says
    otherwise (H.264: 0.04 s where the executable's frame 0 is at 0 or 0.08 s)."""
    from napari_video_extract.core import probe as probe_module

    assert "avi" not in probe_module.FIRST_PTS_FROM_PYAV
    differs = set()
    for path in avi_videos:
        expected = ffmpeg_probe.first_frame_pts(path, 30.0)
        assert probe(path, cache=False).first_pts == expected, path.name
        if probe_module._read_header(path, 30.0)["first_pts"] != expected:
            differs.add(path.name)
    assert differs == {p.name for p in avi_videos if p.name.startswith("h264")}


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_h264_avi_stills_are_the_frames_of_a_full_decode(avi_videos, backend):
    """With frame 0 one tick off, every still after frame 0 was its neighbour."""
    for path in avi_videos[:3]:
        info = probe(path, cache=False)
        plain = synthetic.decode_all(path)
        assert len(plain) == info.frame_count == 50
        wanted = [0, 1, 2, 5, 24, 49]
        missing: list[int] = []
        got = list(decode_frames(info, wanted, workers=1, backend=backend, missing=missing))
        assert missing == [] and [f.index for f in got] == wanted, path.name
        for frame in got:
            assert synthetic.decode_index(frame.image) == frame.index, path.name
            np.testing.assert_array_equal(frame.image, plain[frame.index], err_msg=path.name)


def test_frame_0_time_elsewhere_comes_from_the_executable(ts_video, monkeypatch):
    runs = []
    real_first_pts = ffmpeg_probe.first_frame_pts
    monkeypatch.setattr(
        ffmpeg_probe, "first_frame_pts", lambda *a: runs.append(a) or real_first_pts(*a)
    )
    info = probe(ts_video, cache=False)
    assert info.container == "mpegts" and len(runs) == 1
    assert info.first_pts == pytest.approx(1.48, abs=1e-6)

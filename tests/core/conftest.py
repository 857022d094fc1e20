"""Session-wide synthetic videos (made once, cached) for the engine tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import synthetic  # noqa: E402

MEDIA_DIR = TESTS_DIR.parent.parent / "shared" / "media"


@pytest.fixture(scope="session")
def videos_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def cfr_video(videos_dir) -> Path:
    """4 s, 25 fps, 100 frames, H.264 with B-frames, keyframe every 12 frames."""
    return synthetic.make_cfr(videos_dir / "cfr_bframes.mp4")


@pytest.fixture(scope="session")
def vfr_video(videos_dir) -> tuple[Path, object]:
    """(path, true frame times) of an 80-frame variable frame rate mp4."""
    return synthetic.make_vfr(videos_dir / "vfr.mp4")


@pytest.fixture(scope="session")
def ts_video(videos_dir) -> Path:
    """The CFR content in MPEG-TS: container start time 1.4 s (not 0)."""
    return synthetic.make_cfr(videos_dir / "offset.ts", extra=["-f", "mpegts"])


@pytest.fixture(scope="session")
def rotated_video(videos_dir) -> Path:
    """50 frames stored sideways with display rotation 90: upright 160x120 on screen."""
    return synthetic.make_rotated(videos_dir / "rotated.mp4", videos_dir)


@pytest.fixture(scope="session")
def audio_video(videos_dir) -> Path:
    """75 frames of video plus an AAC track."""
    return synthetic.make_with_audio(videos_dir / "with_audio.mp4")


@pytest.fixture(scope="session")
def bad_files(videos_dir, cfr_video) -> dict[str, Path]:
    """Inputs that must each fail with a one-line error naming the file."""
    d = videos_dir / "bad"
    d.mkdir()
    return {
        "text": synthetic.make_text(d / "notes.mp4"),
        "empty": synthetic.make_empty(d / "empty.mp4"),
        "truncated": synthetic.make_truncated(d / "truncated.mp4", cfr_video),
        "audio_m4a": synthetic.make_audio_only(d / "tone.m4a"),
        "audio_mp4": synthetic.make_audio_only(d / "tone.mp4"),
        "hls": synthetic.make_hls_playlist(d / "playlist.mp4", cfr_video),
        "ffconcat": synthetic.make_ffconcat(d / "concat.mp4", cfr_video),
        "missing": d / "does_not_exist.mp4",
    }


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The real clips of ``../shared/media`` (skips when absent)."""
    if not (MEDIA_DIR / "bbb_720p_h264_5s.mp4").is_file():
        pytest.skip(f"real clips not available: {MEDIA_DIR} is absent")
    return MEDIA_DIR

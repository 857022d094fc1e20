"""VideoReader: exact frames for any access pattern, streaming, cache, threads.

No display needed. Ground truth is either the index drawn in the synthetic
videos' pixels or one plain sequential decode of the same file.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core.decode import FrameStream, startup_frames
from napari_video_extract.core.errors import NotAVideoError, VideoOpenError
from napari_video_extract.core.probe import probe
from napari_video_extract.core.sample import sample_video_path
from napari_video_extract.core.video_reader import VideoReader, pyav_available

SMALL_CLIPS = [
    "bbb_720p_h264_5s.mp4",
    "bbb_720p_vp8_30s.webm",
    "megamind_xvid_cuts.avi",
    "tree_cinepak.avi",
]


@pytest.fixture(
    params=[
        "ffmpeg",
        pytest.param(
            "pyav",
            marks=pytest.mark.skipif(
                not pyav_available(), reason="PyAV not installed (pip install av)"
            ),
        ),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """Every reader test runs with each decoder."""
    return request.param


def _kill_decoder(video: VideoReader) -> None:
    """Make the running decoder die, as the stall watchdog or a crash would."""
    stream = video._cursor.stream
    if video.backend == "ffmpeg":
        stream._proc.kill()
        stream._proc.wait()
    else:
        # The next read of the file fails (closing the container under PyAV's
        # demuxer would crash PyAV itself, not our code).
        def failing_reads():
            raise OSError("input/output error")
            yield

        stream._pending = []
        stream._packets = failing_reads()


@pytest.fixture(scope="module")
def reference(indexed_video: Path) -> list[np.ndarray]:
    """Every frame of the indexed video from one plain ffmpeg decode."""
    frames = synthetic.decode_all(indexed_video)
    assert [synthetic.decode_index(f) for f in frames] == list(range(len(frames)))
    return frames


def test_random_access_is_exact(
    backend: str, indexed_video: Path, reference: list[np.ndarray]
) -> None:
    rng = random.Random(4)
    indices = [rng.randrange(len(reference)) for _ in range(40)] + [0, len(reference) - 1]
    with VideoReader(indexed_video, backend=backend) as video:
        assert len(video) == len(reference) == 250
        for i in indices:
            frame = video.read(i)
            assert frame.shape == (120, 160, 3)
            assert frame.dtype == np.uint8
            assert synthetic.decode_index(frame) == i
            np.testing.assert_array_equal(frame, reference[i])


def test_stepping_forward_uses_one_decoder(
    backend: str, indexed_video: Path, reference: list[np.ndarray]
) -> None:
    with VideoReader(indexed_video, cache_bytes=0, backend=backend) as video:
        for i in range(len(video)):
            np.testing.assert_array_equal(video.read(i), reference[i])
        assert video.stats.streams_started == 1
        assert video.stats.frames_decoded == len(video)


def test_small_jumps_forward_continue_the_decoder(backend: str, indexed_video: Path) -> None:
    with VideoReader(indexed_video, cache_bytes=0, backend=backend) as video:
        for i in range(3, len(video), 3):  # crosses keyframes every 25 frames
            assert synthetic.decode_index(video.read(i)) == i
        assert video.stats.streams_started == 1


def test_backward_jump_seeks_again(backend: str, indexed_video: Path) -> None:
    with VideoReader(indexed_video, cache_bytes=0, backend=backend) as video:
        assert synthetic.decode_index(video.read(60)) == 60
        assert synthetic.decode_index(video.read(55)) == 55
        assert video.stats.streams_started == 2
        # Started at the keyframe before 55 (50), not at 0.
        assert video.stats.frames_decoded == 2


def test_far_jump_forward_seeks_instead_of_decoding_through(
    backend: str,
) -> None:
    # 640x360: a new decoder costs about 300 frames of decoding, so a jump of
    # 500 frames to a keyframe is cheaper as a seek; the tiny indexed video
    # (160x120) would rather always decode forward.
    path = sample_video_path()
    info = probe(path)
    far = int(info.keyframes[-1])
    assert far - 2 > startup_frames(info)
    with FrameStream(info, 0, (far,), seek=False) as stream:  # sequential
        expected = next(stream).image
    with VideoReader(path, info=info, cache_bytes=0, backend=backend) as video:
        video.read(1)
        np.testing.assert_array_equal(video.read(far), expected)
        assert video.stats.streams_started == 2
        assert video.stats.frames_decoded == 2


def test_a_dead_decoder_is_replaced(backend: str, indexed_video: Path) -> None:
    with VideoReader(indexed_video, backend=backend) as video:
        assert synthetic.decode_index(video.read(30)) == 30
        _kill_decoder(video)  # as the stall watchdog does after a long pause
        # Frames already in the pipe may still come out; after them the reader
        # must notice the dead decoder and start another one.
        for i in range(31, 250):
            assert synthetic.decode_index(video.read(i)) == i
        assert video.stats.streams_started == 2


def test_cache_is_bounded_and_serves_hits(backend: str, indexed_video: Path) -> None:
    frame_bytes = 160 * 120 * 3
    with VideoReader(
        indexed_video, cache_bytes=10 * frame_bytes, backend=backend, prefetch=0
    ) as video:
        for i in range(40):
            video.read(i)
            assert video.cached_bytes <= 10 * frame_bytes
        assert video.cached_bytes == 10 * frame_bytes
        decoded = video.stats.frames_decoded
        assert synthetic.decode_index(video.read(35)) == 35  # still cached
        assert video.stats.cache_hits == 1
        assert video.stats.frames_decoded == decoded
        assert synthetic.decode_index(video.read(3)) == 3  # evicted: decoded again
        assert video.stats.frames_decoded > decoded
        video.clear_cache()
        assert video.cached_bytes == 0


def test_cached_frames_are_read_only(backend: str, indexed_video: Path) -> None:
    with VideoReader(indexed_video, backend=backend) as video:
        frame = video.read(7)
        with pytest.raises(ValueError, match="read-only"):
            frame[0, 0, 0] = 1
        assert synthetic.decode_index(video.read(7)) == 7


def test_index_checks(backend: str, indexed_video: Path) -> None:
    with VideoReader(indexed_video, backend=backend) as video:
        assert synthetic.decode_index(video.read(-1)) == 249
        assert synthetic.decode_index(video.read(np.int64(12))) == 12
        with pytest.raises(IndexError, match="250 frames"):
            video.read(250)
        with pytest.raises(IndexError):
            video.read(-251)
        with pytest.raises(TypeError):
            video.read(1.5)
    with pytest.raises(ValueError, match="closed"):
        video.read(0)
    assert video.closed


def test_close_stops_the_decoder(backend: str, indexed_video: Path) -> None:
    video = VideoReader(indexed_video, backend=backend)
    video.read(3)
    stream = video._cursor.stream
    video.close()
    if backend == "ffmpeg":
        assert stream._proc.poll() is not None
    else:
        assert stream.closed
    assert video.cached_bytes == 0
    video.close()  # idempotent


def test_properties_and_metadata(backend: str, indexed_video: Path) -> None:
    with VideoReader(indexed_video, backend=backend) as video:
        props = video.properties()
        assert props.shape == (250, 120, 160, 3) == video.shape
        assert props.dtype == np.uint8
        assert props.n_images == 250
        assert props.is_batch
        assert props.fps == pytest.approx(25)
        meta = video.metadata()
        assert meta["frame_count"] == 250
        assert meta["width"] == 160
        assert meta["height"] == 120
        assert meta["fps"] == pytest.approx(25)
        np.testing.assert_allclose(meta["frame_times"], np.arange(250) / 25, atol=1e-3)
        assert str(indexed_video) in repr(video)


def test_iter_is_sequential_and_exact(
    backend: str, indexed_video: Path, reference: list[np.ndarray]
) -> None:
    with VideoReader(indexed_video, backend=backend) as video:
        frames = list(video.iter(start=37, stop=90))
        assert [synthetic.decode_index(f) for f in frames] == list(range(37, 90))
        np.testing.assert_array_equal(frames[0], reference[37])
        assert video.stats.streams_started == 0  # iter has its own decoder
        assert len(list(video.iter(start=245))) == 5
        assert list(video.iter(start=10, stop=10)) == []


def test_threads_read_concurrently(backend: str, indexed_video: Path) -> None:
    errors: list[str] = []
    with VideoReader(indexed_video, cache_bytes=20 * 160 * 120 * 3, backend=backend) as video:

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(15):
                i = rng.randrange(len(video))
                got = synthetic.decode_index(video.read(i))
                if got != i:
                    errors.append(f"asked {i}, got {got}")

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_variable_frame_rate(backend: str, vfr_video: tuple[Path, np.ndarray]) -> None:
    path, times = vfr_video
    with VideoReader(path, backend=backend) as video:
        assert len(video) == len(times)
        assert video.info.variable_frame_rate
        np.testing.assert_allclose(video.metadata()["frame_times"], times, atol=2e-3)
        order = list(range(len(times)))
        random.Random(1).shuffle(order)
        for i in order[:30]:
            assert synthetic.decode_index(video.read(i)) == i


def test_non_zero_start_time(backend: str, ts_video: Path) -> None:
    with VideoReader(ts_video, backend=backend) as video:
        assert video.info.container_start > 0.5  # MPEG-TS starts at 1.4 s
        assert video.metadata()["frame_times"][0] == 0.0
        assert len(video) == 100
        for i in (99, 0, 50, 13, 14, 15, 70):
            assert synthetic.decode_index(video.read(i)) == i


def test_open_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoOpenError):
        VideoReader(text)
    with pytest.raises(VideoOpenError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")
    audio = synthetic.make_audio_only(tmp_path / "tone.m4a")
    with pytest.raises(NotAVideoError):
        VideoReader(audio)


@pytest.mark.media
@pytest.mark.parametrize("name", SMALL_CLIPS)
def test_real_clips_match_sequential_decoding(backend: str, media_dir: Path, name: str) -> None:
    info = probe(media_dir / name)
    n = info.frame_count
    rng = random.Random(n)
    random_indices = [rng.randrange(n) for _ in range(12)] + [n - 1]
    run_start = rng.randrange(max(1, n - 30))
    run = list(range(run_start, min(n, run_start + 30)))
    wanted = set(random_indices) | set(run)
    # One plain sequential decode from the start, keeping only the frames we check.
    expected: dict[int, np.ndarray] = {}
    with FrameStream(info, 0, seek=False) as stream:
        for frame in stream:
            if frame.index in wanted:
                expected[frame.index] = frame.image
    assert set(expected) == wanted

    with VideoReader(media_dir / name, info=info, cache_bytes=0, backend=backend) as video:
        for i in random_indices:
            np.testing.assert_array_equal(video.read(i), expected[i], err_msg=f"frame {i}")
        before = video.stats.streams_started
        for i in run:
            np.testing.assert_array_equal(video.read(i), expected[i], err_msg=f"frame {i}")
        assert video.stats.streams_started <= before + 1  # the run streams from one decoder


def test_rotated_video_matches_ffmpeg(rotated_video: Path, backend: str) -> None:
    info = probe(rotated_video)
    assert info.rotation % 180 == 90
    with FrameStream(info, 0, seek=False) as stream:  # ffmpeg's autorotate
        expected = [frame.image for frame in stream]
    with VideoReader(rotated_video, info=info, backend=backend, cache_bytes=0) as video:
        assert video.shape == (len(expected), 120, 160, 3)
        for i in (0, 49, 17, 18, 30, 1):
            np.testing.assert_array_equal(video.read(i), expected[i], err_msg=f"frame {i}")


def test_backend_choice(indexed_video: Path) -> None:
    with VideoReader(indexed_video) as video:
        assert video.backend == ("pyav" if pyav_available() else "ffmpeg")
    with VideoReader(indexed_video, backend="ffmpeg") as video:
        assert video.backend == "ffmpeg"
        assert "ffmpeg" in repr(video)
    with pytest.raises(ValueError, match="backend"):
        VideoReader(indexed_video, backend="opencv")


def test_a_size_change_mid_stream_matches_a_full_decode(backend: str, tmp_path: Path) -> None:
    # The PyAV source keeps one RGB converter for all its frames: a picture
    # of another size (scaled back to the stream's, as ffmpeg does) must not
    # come out of a converter set up for the previous size, in either order.
    small = synthetic.make_cfr(tmp_path / "small.ts", frames=30, extra=["-f", "mpegts"])
    large = synthetic.make_cfr(
        tmp_path / "large.ts",
        frames=30,
        size=(320, 240),
        extra=["-f", "mpegts", "-output_ts_offset", "10"],
    )
    both = tmp_path / "both.ts"
    both.write_bytes(small.read_bytes() + large.read_bytes())
    reference = synthetic.decode_all(both)
    with VideoReader(both, backend=backend, cache_bytes=0) as video:
        assert len(video) == len(reference) == 60
        for i in [*range(len(video)), 45, 3, 59, 0, 31, 28]:
            assert np.array_equal(video.read(i), reference[i]), i

"""AVI: every still and every reader frame is the frame a full sequential decode gives.

AVI stores each packet in a slot (one tick, decoding order) and no
presentation time; the decoders time each frame by the slot of the packet
that gives it out. With B-frames (a decoder delay) and slots that are not
evenly spaced (a start offset: ffmpeg's muxer writes the first packet at
slot 0 and the next ones when they are due; empty "drop" chunks; a header
``dwStart``) the frame table must follow that, or each frame is taken for
its neighbour. Ground truth: the synthetic frames carry their index in
their pixels, and a plain full decode by the ffmpeg executable.
"""

from __future__ import annotations

import itertools
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract.core.aviindex import avi_frame_ticks, read_avi_frame_table
from napari_video_extract.core.decode import decode_frames
from napari_video_extract.core.errors import DecodeError
from napari_video_extract.core.extract import Interval, extract_video
from napari_video_extract.core.ffmpeg import ffmpeg_exe
from napari_video_extract.core.probe import probe
from napari_video_extract.core.video_reader import VideoReader

FRAMES = 30
FPS = 25
#: Frames left out with their timestamps kept (AVI writes empty chunks there):
#: mid-stream, and just before the last three frames, where a decoder with a
#: delay of two gives the last two out after the last packet.
_DROPPED = {"drops": range(10, 14), "tail_drops": range(24, 27)}

_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "12", "-sc_threshold", "0"]
_CODECS = {
    "h264_b": [*_X264, "-bf", "2", "-pix_fmt", "yuv420p"],
    "h264": [*_X264, "-bf", "0", "-pix_fmt", "yuv420p"],
    # MPEG-4 part 2 with B-frames (DivX/Xvid style): a decoder delay of one frame.
    "mpeg4_b": ["-c:v", "mpeg4", "-bf", "2", "-g", "12", "-q:v", "3", "-pix_fmt", "yuv420p"],
    "mjpeg": ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"],
}


def _kept(name: str) -> list[int]:
    """The frames of the fixture ``name`` (its frame i shows the i-th of them)."""
    drops = "tail_drops" if name.endswith("tail_drops") else "drops" if "drops" in name else ""
    dropped = _DROPPED.get(drops, ())
    return [i for i in range(FRAMES) if i not in dropped]


def _make(path: Path, codec: str, *, offset: float = 0, drops: str = "") -> Path:
    """``FRAMES`` index frames (frame i shows i, 25 fps) in AVI, ``drops`` left out."""
    kept = [i for i in range(FRAMES) if i not in _DROPPED.get(drops, ())]
    raw = b"".join(synthetic.index_image(i).tobytes() for i in kept)
    size = f"{synthetic.WIDTH}x{synthetic.HEIGHT}"
    if drops:
        # Each frame at its own time (the left-out ones leave a gap).
        times = "+".join(f"eq(N\\,{n})*{i}" for n, i in enumerate(kept))
        timing = ["-vf", f"setpts='({times})/({FPS}*TB)'", "-fps_mode", "passthrough"]
        timing += ["-enc_time_base", f"1/{FPS}"]
    else:
        timing = []
    synthetic.run(
        [
            *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", size, "-framerate", str(FPS)),
            *("-i", "pipe:0", *timing, *_CODECS[codec]),
            *(["-output_ts_offset", f"{offset:g}"] if offset else []),
            str(path),
        ],
        stdin=raw,
    )
    return path


def _with_dw_start(path: Path, source: Path, start: int) -> Path:
    """``source`` with the video stream header's ``dwStart`` (first slot) set to ``start``."""
    data = bytearray(source.read_bytes())
    payload = data.index(b"strh") + 8
    assert data[payload : payload + 4] == b"vids"
    struct.pack_into("<I", data, payload + 28, start)  # after fccType..dwRate
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def avis(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("avi_frames")
    made = {}
    for codec in _CODECS:
        for offset in (0, 1):
            name = f"{codec}_offset{offset}"
            made[name] = _make(folder / f"{name}.avi", codec, offset=offset)
    made["h264_b_offset0.5"] = _make(folder / "h264_b_offset0.5.avi", "h264_b", offset=0.5)
    for codec, drops in [("h264_b", "drops"), ("mpeg4_b", "drops"), ("h264_b", "tail_drops")]:
        name = f"{codec}_{drops}"
        made[name] = _make(folder / f"{name}.avi", codec, drops=drops)
    made["h264_b_dwstart"] = _with_dw_start(
        folder / "h264_b_dwstart.avi", made["h264_b_offset1"], 40
    )
    return made


def _decoded_times(path: Path) -> np.ndarray:
    """The time a plain full decode by the executable gives each frame (``-copyts``).

    From ``showinfo`` in the log: this is a synthetic file we made, whose
    metadata holds no text.
    """
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-copyts", "-i", str(path), "-map", "0:v:0"]
    args += ["-vf", "showinfo", "-f", "null", "-"]
    proc = subprocess.run(args, capture_output=True, check=True, timeout=120)
    return np.array([float(t) for t in re.findall(rb"pts_time:(-?[0-9.]+)", proc.stderr)])


def _plain_decode(path: Path, name: str) -> list[np.ndarray]:
    plain = synthetic.decode_all(path)
    # The reference itself is right: each frame shows the one we made.
    assert [synthetic.decode_index(image) for image in plain] == _kept(name), name
    return plain


def test_the_fixtures_have_uneven_slots_and_decoder_delays(avis):
    """The cases the frame table must get right are really there."""
    uneven = {
        name
        for name, path in avis.items()
        if (np.diff(read_avi_frame_table(path, stream=0).ticks) > 1).any()
    }
    # A start offset leaves slot 0 alone with a gap after it; drops leave gaps.
    assert uneven == {name for name in avis if not name.endswith("_offset0")}
    dw = read_avi_frame_table(avis["h264_b_dwstart"], stream=0).ticks
    assert dw[0] == 40


@pytest.mark.parametrize(
    "name",
    [
        "h264_b_offset0",
        "h264_b_offset1",
        "h264_b_offset0.5",
        "h264_offset0",
        "h264_offset1",
        "mpeg4_b_offset0",
        "mpeg4_b_offset1",
        "mjpeg_offset0",
        "mjpeg_offset1",
        "h264_b_drops",
        "mpeg4_b_drops",
        "h264_b_tail_drops",
        "h264_b_dwstart",
    ],
)
def test_stills_and_reader_frames_are_those_of_a_full_decode(avis, name):
    path = avis[name]
    info = probe(path, cache=False)
    plain = _plain_decode(path, name)
    assert info.frame_count == len(plain)
    # The frames' own times (those the decoders give them), not the packets' slots.
    np.testing.assert_allclose(info.frame_pts, _decoded_times(path), atol=1e-9)
    if name.startswith(("h264_b_offset", "mpeg4_b_offset", "h264_b_dwstart")):
        # With a decoder delay the gap after slot 0 is before frame 0 is given out.
        np.testing.assert_allclose(info.frame_times, np.arange(FRAMES) / FPS, atol=1e-9)
    _assert_exact(info, plain, name)


def _assert_exact(info, plain: list[np.ndarray], name: str) -> None:
    """Stills and reader frames (jumps and steps) of both sources are ``plain``'s."""
    n = info.frame_count
    wanted = sorted({0, 1, 2, 3, 5, 11, 12, 13, n // 2, n - 3, n - 2, n - 1})
    for backend in ("pyav", "ffmpeg"):
        missing: list[int] = []
        got = list(decode_frames(info, wanted, workers=1, backend=backend, missing=missing))
        assert missing == [] and [f.index for f in got] == wanted, (name, backend)
        for frame in got:
            np.testing.assert_array_equal(frame.image, plain[frame.index], err_msg=name)
        with VideoReader(
            info.path, info=info, backend=backend, cache_bytes=0, prefetch=0
        ) as video:
            for i in [n - 1, 0, n // 2, 2, 13, 12, n - 2, 1]:  # jumps both ways
                np.testing.assert_array_equal(video.read(i), plain[i], err_msg=f"{name} {i}")
            for i, image in enumerate(video.iter(start=1), start=1):  # stepping
                np.testing.assert_array_equal(image, plain[i], err_msg=f"{name} {i}")
            assert i == n - 1


@pytest.mark.media
@pytest.mark.parametrize("offset", [0, 1])
def test_real_packed_b_frames_with_a_start_offset(media_dir, tmp_path, offset):
    """Xvid's packed B-frames (a P- and a B-frame in one packet, then a
    placeholder), as a real clip stores them: its first 40 packets copied
    into an AVI of their own, starting at 0 or 1 s."""
    path = tmp_path / f"packed_offset{offset}.avi"
    copy = ["-map", "0:v", "-c", "copy", "-frames:v", "40", "-output_ts_offset", str(offset)]
    synthetic.run(["-i", str(media_dir / "megamind_xvid_cuts.avi"), *copy, str(path)])
    info = probe(path, cache=False)
    plain = synthetic.decode_all(path)
    assert info.frame_count == len(plain) == 40
    np.testing.assert_allclose(info.frame_pts, _decoded_times(path), atol=1e-6)
    np.testing.assert_allclose(np.diff(info.frame_times), 1001 / 24000, atol=1e-6)
    # Neighbours differ, so a frame taken for its neighbour is seen.
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(plain))
    _assert_exact(info, plain, path.name)


def test_extracted_stills_are_the_frames_their_times_name(avis, tmp_path):
    """Every 0.2 s of H.264 with B-frames starting at 1 s: frames 0, 5, 10..."""
    from PIL import Image

    path = avis["h264_b_offset1"]
    plain = synthetic.decode_all(path)
    result = extract_video(path, tmp_path, Interval(every=0.2), fmt="png")
    assert result.ok and result.missing == []
    assert sorted(r.frame for r in result.records) == list(range(0, FRAMES, 5))
    for rec in result.records:
        image = np.asarray(Image.open(tmp_path / rec.file).convert("RGB"))
        assert synthetic.decode_index(image) == rec.frame, rec.file
        assert rec.time == pytest.approx(rec.frame / FPS, abs=1e-9)
        np.testing.assert_array_equal(image, plain[rec.frame], err_msg=rec.file)


def test_avi_frame_ticks_follow_the_decoder_delay():
    slots = np.array([0, 24, 25, 26, 27, 28], dtype=np.int64)
    # No delay: the slots. A delay of 2: frame 0 is given out by the third packet.
    assert avi_frame_ticks(slots, 0) is slots
    np.testing.assert_array_equal(avi_frame_ticks(slots, 25), [25, 26, 27, 28, 29, 30])
    # Frame 0 at a time no packet has: not this model (the probe keeps its offset).
    assert avi_frame_ticks(slots, 23) is None
    assert avi_frame_ticks(slots, 40) is None
    # The frames after the last packet: one tick apart, or the last gap when over two.
    np.testing.assert_array_equal(avi_frame_ticks(slots[:-1], 25), [25, 26, 27, 28, 29])
    late = np.array([0, 1, 2, 3, 7], dtype=np.int64)
    np.testing.assert_array_equal(avi_frame_ticks(late, 2), [2, 3, 7, 11, 15])


def _cut_in(path: Path, source: Path, packet: int, *, keep: float) -> Path:
    """``source`` cut ``keep`` of the way into its ``packet``-th video packet (file order)."""
    import av

    with av.open(str(source)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, size = packets[packet]
    path.write_bytes(source.read_bytes()[: pos + int(size * keep)])
    return path


def _assert_frame(image, plain, index: int, cut: int | None, err: str) -> None:
    """``image`` is frame ``index`` of the full decode exactly; for the concealed
    frame ``cut``, a frame of that size that is no other frame of the file.

    The decoder makes the part-read packet's frame by concealing what is
    missing from a frame it holds, and with frame threads which one depends
    on their timing: measured 0-2 levels from the full decode's in most runs,
    25 levels (as far from it as from frame ``cut - 1``) in one suite run of
    many. So its pixels are not a fact to test; that no neighbour is handed
    out in its place is.
    """
    if index != cut:
        np.testing.assert_array_equal(image, plain[index], err_msg=err)
        return
    assert image.shape == plain[index].shape, err
    # (The full decode's own concealed frame may equal the frame before it.)
    others = [
        j
        for j, frame in enumerate(plain)
        if np.array_equal(image, frame) and not np.array_equal(frame, plain[index])
    ]
    assert others == [], (err, others)


@pytest.mark.parametrize(
    ("name", "keep", "frames"),
    [
        # A few bytes of the keyframe 24: the decoder refuses them (no frame 24).
        ("h264_b_offset0", 0.1, 24),
        # Most of it: the decoder makes a frame of it, the rest concealed from
        # frame 23 (which a seek to it would not have: no keyframe).
        ("h264_offset0", 0.75, 25),
        ("h264_b_offset0", 0.75, 25),
    ],
)
def test_a_file_cut_in_a_keyframe_lists_only_the_frames_a_full_decode_gives(
    avis, tmp_path, name, keep, frames
):
    """An AVI cut mid-GOP (no idx1 left, its last packet read in part): the
    frame table is the full decode's (no invented frame at the end, the cut
    keyframe no seek point), and every frame either source gives is the full
    decode's, through stills and reader jumps alike."""
    path = _cut_in(tmp_path / f"{name}_cut.avi", avis[name], 24, keep=keep)
    info = probe(path, cache=False)
    plain = synthetic.decode_all(path)
    assert info.frame_count == len(plain) == frames
    np.testing.assert_allclose(info.frame_pts, _decoded_times(path), atol=1e-9)
    assert info.keyframes.tolist() == [0, 12]
    wanted = list(range(10, frames))
    # The frame of the part-read packet is concealed from the one before, and
    # how depends on the decoder's threads' timing (measured: up to 2 levels
    # apart between runs): it must be that frame, nearly; every other exactly.
    cut = 24 if frames == 25 else None
    for backend in ("pyav", "ffmpeg"):
        missing: list[int] = []
        got = list(decode_frames(info, wanted, workers=1, backend=backend, missing=missing))
        for frame in got:
            _assert_frame(frame.image, plain, frame.index, cut, f"{backend} {frame.index}")
        assert sorted([f.index for f in got] + missing) == wanted, backend
        # PyAV's frame threads (FFmpeg 8) lose the frames they hold when the
        # last packet fails: reported missing, never replaced.
        assert missing == [] if backend == "ffmpeg" else set(missing) <= {22, 23}, backend
        for i in [frames - 1, 13, frames - 2, 22]:  # a new reader each: every read a jump
            with VideoReader(path, info=info, backend=backend, cache_bytes=0, prefetch=0) as video:
                try:
                    image = video.read(i)
                except DecodeError as exc:
                    assert backend == "pyav" and i in missing and str(path) in str(exc), exc
                    continue
                _assert_frame(image, plain, i, cut, f"{backend} {i}")

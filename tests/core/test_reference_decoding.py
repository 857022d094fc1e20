"""Reference-only decoding is exact, and really decodes less.

Every still :func:`decode_frames` gives, with either frame source, and every
frame :class:`VideoReader` reads at random, is compared with one plain
sequential ffmpeg decode of the same file: on synthetic videos whose frame
``i`` shows ``i`` (B-pyramids, open GOPs, VFR, an edit list, rotation, an
MPEG-TS start at 1.4 s) and on the real clips. The "it skipped" claims are
on the decoder's own frame count, never on timing.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import synthetic
from napari_video_extract.core.decode import DecodeStats, choose_backend, decode_frames
from napari_video_extract.core.errors import DecodeError
from napari_video_extract.core.ffmpeg import ffmpeg_exe
from napari_video_extract.core.frame_cursor import reader_frame_threads
from napari_video_extract.core.probe import probe
from napari_video_extract.core.pyav_source import PyAVStream, pyav_available
from napari_video_extract.core.reference_frames import is_reference_packet, reference_fraction
from napari_video_extract.core.video_reader import VideoReader

pytestmark = pytest.mark.skipif(not pyav_available(), reason="PyAV (av) is not installed")

_PYRAMID = ["-x264-params", "bframes=3:b-pyramid=normal"]
_OPEN_GOP = ["-x264-params", "bframes=3:b-pyramid=normal:open_gop=1"]


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Path]:
    """The synthetic videos, by what makes them hard."""
    d = tmp_path_factory.mktemp("refdecode")
    make = synthetic.make_cfr
    return {
        "b_pyramid": make(d / "pyramid.mp4", frames=120, gop=30, extra=_PYRAMID),
        "open_gop": make(d / "open_gop.mkv", frames=120, gop=30, extra=_OPEN_GOP),
        "vfr": synthetic.make_vfr(d / "vfr.mp4")[0],
        "edit_list": make(d / "edit_list.mp4", frames=100, extra=["-output_ts_offset", "-1"]),
        "rotated": synthetic.make_rotated(d / "rotated.mp4", d),
        "ts_offset": make(d / "offset.ts", frames=100, extra=[*_PYRAMID, "-f", "mpegts"]),
    }


def _scattered(count: int, *, seed: int) -> list[int]:
    """A third of the frames, spread, plus the first and last: runs of every shape."""
    rng = random.Random(seed)
    return sorted({0, count - 1, *rng.sample(range(count), max(1, count // 3))})


@pytest.mark.parametrize(
    "kind", ["b_pyramid", "open_gop", "vfr", "edit_list", "rotated", "ts_offset"]
)
def test_stills_equal_a_full_decode_with_both_sources(kinds, kind):
    path = kinds[kind]
    info = probe(path)
    reference = synthetic.decode_all(path)  # one plain sequential ffmpeg decode
    assert len(reference) == info.frame_count
    wanted = _scattered(info.frame_count, seed=len(kind))
    shift = synthetic.decode_index(reference[0])  # the edit list hides 25 frames
    for backend in ("pyav", "ffmpeg"):
        missing: list[int] = []
        got = {
            f.index: f.image
            for f in decode_frames(info, wanted, workers=2, backend=backend, missing=missing)
        }
        assert missing == [] and sorted(got) == wanted, backend
        for i in wanted:
            assert synthetic.decode_index(got[i]) == i + shift, (backend, i)
            assert np.array_equal(got[i], reference[i]), (backend, i)


@pytest.mark.parametrize("kind", ["b_pyramid", "open_gop", "vfr", "edit_list", "ts_offset"])
def test_reader_random_access_equals_a_full_decode(kinds, kind):
    path = kinds[kind]
    reference = synthetic.decode_all(path)
    order = list(range(len(reference)))
    random.Random(7).shuffle(order)
    with VideoReader(path, backend="pyav", cache_bytes=0) as video:
        for i in order[:40]:
            assert np.array_equal(video.read(i), reference[i]), i


def test_nonref_frames_are_really_skipped(kinds):
    path = kinds["b_pyramid"]
    info = probe(path)
    last_of_gop = int(info.keyframes[2]) - 1  # decoding reaches it from keyframe 1
    start = info.keyframe_before(last_of_gop)
    counts = {}
    for skip in (False, True):
        with PyAVStream(info, start, (last_of_gop,), threads=1, skip=skip) as stream:
            frames = [next(stream)]  # and stop there, as decode_frames does
            counts[skip] = stream.frames_decoded
        assert [f.index for f in frames] == [last_of_gop]
        assert synthetic.decode_index(frames[0].image) == last_of_gop
    assert counts[False] >= last_of_gop - start + 1  # every frame up to it
    assert counts[True] < counts[False]  # B-pyramid leaves are not references
    # decode_frames reports the frames the decoders really produced.
    stats = DecodeStats()
    list(decode_frames(info, [last_of_gop], workers=1, backend="pyav", stats=stats))
    assert stats.backend == "pyav" and stats.runs == 1
    assert stats.frames_decoded == counts[True]


def test_a_reader_jump_decodes_only_references_with_frame_threads(kinds):
    # The reader's decoder runs frame threads (its default); a jump to the
    # last frame of a GOP decodes the references on the way, and the frames
    # on the way and after it stay exact.
    path = kinds["b_pyramid"]
    info = probe(path)
    reference = synthetic.decode_all(path)
    last_of_gop = int(info.keyframes[2]) - 1
    on_the_way = last_of_gop - info.keyframe_before(last_of_gop) + 1
    decoded = {}
    for backend in ("pyav", "ffmpeg"):
        with VideoReader(path, backend=backend, cache_bytes=0, prefetch=0) as video:
            assert np.array_equal(video.read(last_of_gop), reference[last_of_gop])
            decoded[backend] = video.stats.decoder_frames
            if backend == "pyav":  # frame threading only, cores + 2 threads
                codec = video._cursor.stream._codec
                assert "FRAME" in str(codec.thread_type) and "SLICE" not in str(codec.thread_type)
                assert codec.thread_count == reader_frame_threads() >= 3
            for i in range(last_of_gop + 1, last_of_gop + 8):  # then step on
                assert np.array_equal(video.read(i), reference[i]), (backend, i)
            assert video.stats.streams_started == 1
    assert decoded["ffmpeg"] >= on_the_way  # ffmpeg's select decodes every frame
    assert 0 < decoded["pyav"] < on_the_way  # the B-pyramid leaves were skipped


def test_the_reader_falls_back_to_a_full_decode_when_skipping_misses(kinds, monkeypatch):
    # The skip choice is made from the packet's pts, the frame is named by its
    # best-effort timestamp; should they disagree, a wanted non-reference
    # frame is skipped. Make every packet look unwanted (the worst such
    # disagreement): the skipping tries miss the B-frames, the last try
    # decodes everything, and the reader still gives the right pixels.
    path = kinds["b_pyramid"]
    info = probe(path)
    reference = synthetic.decode_all(path)
    monkeypatch.setattr(PyAVStream, "_wanted_packet", lambda self, packet: False)
    wanted = [*range(1, 12, 2), info.frame_count - 2]
    with PyAVStream(info, 0, tuple(wanted), seek=False, threads=1) as stream:
        missed = set(wanted) - {f.index for f in stream}
    assert missed  # the skipping decode really loses some of them
    with VideoReader(path, backend="pyav", prefetch=0) as video:
        for i in wanted:
            image = video.read(i)
            assert synthetic.decode_index(image) == i
            assert np.array_equal(image, reference[i]), i


def test_interlaced_video_skips_nothing_and_equals_a_full_decode(tmp_path):
    # Field-coded pictures (MPEG-2, H.264 PAFF) in PS/TS: a skipped field next
    # to a decoded one would be a half-decoded picture, so interlaced video
    # (here x264's MBAFF in MPEG-TS, flagged interlaced) decodes everything.
    path = synthetic.make_cfr(
        tmp_path / "interlaced.ts",
        frames=48,
        gop=24,
        extra=["-x264-params", "interlaced=1:bframes=3:b-pyramid=normal", "-f", "mpegts"],
    )
    info = probe(path)
    reference = synthetic.decode_all(path)
    wanted = (5, 22, 40)
    counts = {}
    for skip in (False, True):
        with PyAVStream(info, 0, wanted, seek=False, threads=1, skip=skip) as stream:
            got = {f.index: f.image for f in stream}
            counts[skip] = stream.frames_decoded
        assert sorted(got) == list(wanted)
        for i in wanted:
            assert np.array_equal(got[i], reference[i]), (skip, i)
    assert counts[True] == counts[False] == info.frame_count
    assert reference_fraction(info) == 1.0  # and the planner counts every frame
    # The same file, progressive, does skip (so the count above can differ).
    progressive = synthetic.make_cfr(
        tmp_path / "progressive.ts",
        frames=48,
        gop=24,
        extra=["-x264-params", "bframes=3:b-pyramid=normal", "-f", "mpegts"],
    )
    with PyAVStream(probe(progressive), 0, wanted, seek=False, threads=1) as stream:
        assert [f.index for f in stream] == list(wanted)
        assert stream.frames_decoded < info.frame_count


def test_frame_threads_apply_each_skip_to_its_own_packet(kinds):
    # FFmpeg hands skip_frame to the frame thread with each packet; if it did
    # not, a wanted frame would go missing or an unwanted one be decoded.
    info = probe(kinds["b_pyramid"])
    wanted = tuple(range(3, info.frame_count, 5))
    seen = {}
    for threads in (1, None):
        with PyAVStream(info, 0, wanted, seek=False, threads=threads) as stream:
            seen[threads] = ([f.index for f in stream], stream.frames_decoded)
    assert seen[1][0] == list(wanted)
    assert seen[None] == seen[1]
    assert seen[1][1] < info.frame_count


def test_reference_fraction_is_measured_from_the_packets(kinds):
    pyramid = probe(kinds["b_pyramid"])
    fraction = reference_fraction(pyramid)
    assert 0.2 < fraction < 0.9
    # The count a full reference-only decode really makes agrees with it.
    with PyAVStream(pyramid, 0, (pyramid.frame_count - 1,), seek=False, threads=1) as stream:
        list(stream)
        decoded = stream.frames_decoded
    assert abs(decoded / pyramid.frame_count - fraction) < 0.1
    intra_only = probe(synthetic.make_cfr(kinds["vfr"].parent / "intra.mp4", frames=20, gop=1))
    assert reference_fraction(intra_only) == 1.0


def test_packet_headers_are_read_per_codec():
    # H.264 AVCC: 4-byte length, then a NAL header (nal_ref_idc in bits 5-6).
    nonref_b = (2).to_bytes(4, "big") + bytes([0x01, 0x9E])
    ref_p = (2).to_bytes(4, "big") + bytes([0x41, 0x9A])
    assert not is_reference_packet("h264", nonref_b, length_size=4)
    assert is_reference_packet("h264", ref_p, length_size=4)
    assert not is_reference_packet("h264", b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x01\x9e")
    # MPEG-2 picture header: picture_coding_type 3 (B) / 1 (I).
    assert not is_reference_packet("mpeg2video", b"\x00\x00\x01\x00\x00\x18")
    assert is_reference_packet("mpeg2video", b"\x00\x00\x01\x00\x00\x08")
    # MPEG-4 part 2 VOP header: vop_coding_type 2 (B) / 1 (P).
    assert not is_reference_packet("mpeg4", b"\x00\x00\x01\xb6\x80")
    assert is_reference_packet("mpeg4", b"\x00\x00\x01\xb6\x40")
    assert is_reference_packet("vp9", b"\x00")  # unknown: decoded


def _plain_md5s(path: Path) -> list[str]:
    """MD5 of the RGB pixels of every frame of one sequential ffmpeg decode."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path)]
    cmd += ["-map", "0:V:0", "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "framemd5"]
    out = subprocess.run([*cmd, "-"], capture_output=True, timeout=300, check=True).stdout
    rows = [line for line in out.decode("ascii").splitlines() if line.startswith("0,")]
    return [row.rsplit(",", 1)[1].strip() for row in rows]


@pytest.mark.parametrize(
    "name",
    [
        "bbb_720p_h264_5s.mp4",
        "bbb_720p_vp8_30s.webm",
        "city_cc0_mpeg2.mpg",
        "megamind_xvid_cuts.avi",
        "tree_cinepak.avi",
        "vtest_surveillance_msmpeg4.avi",
    ],
)
def test_real_clips_stills_and_reader_equal_a_full_decode(media_dir, name):
    path = media_dir / name
    if not path.is_file():
        pytest.skip(f"real clip {name} is not in {media_dir}")
    info = probe(path)
    md5s = _plain_md5s(path)
    assert len(md5s) == info.frame_count
    wanted = _scattered(info.frame_count, seed=3)[::4]
    missing: list[int] = []
    for frame in decode_frames(info, wanted, workers=2, missing=missing):
        assert hashlib.md5(frame.image.tobytes()).hexdigest() == md5s[frame.index], frame.index
    assert missing == []
    with VideoReader(path, backend=choose_backend(info), cache_bytes=0) as video:
        for i in wanted[::-3]:  # backwards: every read is a jump
            assert hashlib.md5(video.read(i).tobytes()).hexdigest() == md5s[i], i


def test_both_backends_are_frame_sources(kinds):
    from napari_video_extract.core.ffmpeg_source import FrameStream
    from napari_video_extract.core.frame_source import FrameSource

    info = probe(kinds["b_pyramid"])
    for make in (PyAVStream, FrameStream):
        with make(info, 0, (5,), seek=False) as stream:
            assert isinstance(stream, FrameSource)
            frame = next(stream)
            assert frame.index == 5 and synthetic.decode_index(frame.image) == 5
            assert stream.frames_decoded >= 1


@pytest.mark.media
def test_a_keyframe_flag_the_decoder_denies_is_not_seeked_to(media_dir, tmp_path):
    """Random bytes over the middle of an AVI leave its index flagging frame 166 as
    a keyframe that decodes as a P-frame: a seek there gives garbage without an
    error. The seek is refused and the frame is reached by decoding through."""
    from napari_video_extract.core.errors import DecodeError
    from napari_video_extract.core.pyav_source import PyAVStream

    data = bytearray((media_dir / "megamind_xvid_cuts.avi").read_bytes())
    mid, span = len(data) // 2, len(data) // 8
    rng = random.Random(7)
    data[mid : mid + span] = bytes(rng.randrange(256) for _ in range(span))
    video = tmp_path / "broken_middle.avi"
    video.write_bytes(bytes(data))
    info = probe(video, cache=False)
    assert 166 in info.keyframes.tolist()
    with (
        pytest.raises(DecodeError, match="does not decode as one"),
        PyAVStream(info, 166, (168,)) as stream,
    ):
        next(stream)
    with PyAVStream(info, 0, None, seek=False, skip=False) as stream:
        plain = {f.index: f.image for f in stream if f.index >= 166}
    # Both frame sources refuse it: the ffmpeg executable, which cannot see
    # the decoder's flags, gets its seek points checked the same way.
    for backend in ("pyav", "ffmpeg"):
        got = {f.index: f.image for f in decode_frames(info, [166, 168], backend=backend)}
        assert sorted(got) == [166, 168], backend
        for i, image in got.items():
            np.testing.assert_array_equal(image, plain[i], err_msg=f"{backend} {i}")
        with VideoReader(video, backend=backend, cache_bytes=0, prefetch=0) as reader:
            np.testing.assert_array_equal(reader.read(170), plain[170], err_msg=backend)


@pytest.fixture(scope="module")
def open_gop_no_sei(tmp_path_factory) -> Path:
    """H.264 open GOPs (an I-frame every 25) with the recovery-point SEI stripped:
    the container flags each I-frame as a keyframe, the decoder's key-frame flag
    is set on frame 0 (IDR) only."""
    d = tmp_path_factory.mktemp("open_gop_no_sei")
    params = ["-x264-params", "open-gop=1:keyint=25:min-keyint=25:scenecut=0"]
    with_sei = synthetic.make_cfr(d / "with_sei.mp4", frames=250, gop=25, extra=params)
    path = d / "no_sei.mp4"
    strip = ["-c", "copy", "-bsf:v", "filter_units=remove_types=6", str(path)]
    synthetic.run(["-i", str(with_sei), *strip])
    return path


def test_h264_i_frames_the_decoder_does_not_flag_are_not_seeked_to(open_gop_no_sei):
    """An H.264 I-frame that is not a random access point (no IDR, no
    recovery-point SEI) may have later frames refer past it: the seek to it is
    refused, and the frames, reached from a keyframe the decoder flags, are
    exact."""
    from napari_video_extract.core.errors import DecodeError

    path = open_gop_no_sei
    info = probe(path, cache=False)
    assert info.keyframes.tolist() == list(range(0, 250, 25))
    with (
        pytest.raises(DecodeError, match="does not decode as one"),
        PyAVStream(info, 100, (100,)) as stream,
    ):
        next(stream)
    plain = synthetic.decode_all(path)
    targets = [100, 175, 225]
    for backend in ("pyav", "ffmpeg"):
        missing: list[int] = []
        got = list(decode_frames(info, targets, workers=1, backend=backend, missing=missing))
        for frame in got:
            np.testing.assert_array_equal(frame.image, plain[frame.index], err_msg=backend)
        assert missing == [] and [f.index for f in got] == targets, backend
        with VideoReader(path, backend=backend, cache_bytes=0) as video:
            for i in [200, 100, 225, 50, 150]:
                np.testing.assert_array_equal(video.read(i), plain[i], err_msg=backend)


_FORGED = {
    # A B-pyramid over 16 references; weak I-frames (quantiser 51) at 48 and
    # 96: after a seek there the decoder gives no frame at all.
    "withheld": (
        "keyint=250:min-keyint=126:scenecut=60:bframes=3:b-pyramid=normal:ref=16:"
        "weightp=0:zones=48,48,q=51/96,96,q=51",
        set(range(40, 48)) | set(range(88, 96)),
        {48, 96},
    ),
    # P-frames over 3 references, scene cuts at 40 and 80: the decoder's
    # heuristic starts from such an I-frame and gives the frames after it,
    # wrong (they refer past it), without an error.
    "given": (
        "keyint=250:min-keyint=126:scenecut=60:bframes=0:ref=3:weightp=0:"
        "zones=41,41,q=45/81,81,q=45",
        {40, 80},
        {40, 80},
    ),
}


@pytest.fixture(scope="module", params=sorted(_FORGED))
def forged_i_frames(request, tmp_path_factory) -> tuple[Path, set[int]]:
    """H.264 whose non-IDR I-frames (no recovery-point SEI) are flagged as
    keyframes in a Matroska remux (a forged index, or what a muxer told to
    treat every I-frame as a keyframe writes); frames after them refer to
    frames before them. Returns the file and its forged keyframes."""
    import av

    params, flash, forged_at = _FORGED[request.param]
    d = tmp_path_factory.mktemp(f"forged_{request.param}")
    raw, forged = d / "enc.mkv", d / "forged.mkv"
    size, count = 64, 120
    yy, xx = np.mgrid[0:size, 0:size]
    noise = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
    with av.open(str(raw), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"x264-params": params, "preset": "medium"}
        for i in range(count):
            if i in flash:
                img = np.roll(noise, 2 * i, axis=0)
            else:
                img = np.stack(
                    [
                        ((xx + i) * 7) % 256,
                        (yy * 5 + xx * 3 + 2 * i) % 256,
                        (((xx - i) ^ yy) * 9) % 256,
                    ],
                    -1,
                ).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(raw)) as c:
        i_frames = [i for i, f in enumerate(c.decode(video=0)) if i and int(f.pict_type) == 1]
    assert forged_at <= set(i_frames)
    with av.open(str(raw)) as inp, av.open(str(forged), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        packets = [p for p in inp.demux(ist) if p.size]
        for n, packet in enumerate(packets):
            packet.stream = ost
            if n in i_frames:
                packet.is_keyframe = True
            out.mux(packet)
    return forged, forged_at


def test_forged_keyframes_at_h264_i_frames_still_give_the_exact_frames(forged_i_frames):
    """Whether the decoder withholds the frames after such a seek or gives them
    wrong, the seek is refused and every frame is the full decode's."""
    path, forged_at = forged_i_frames
    info = probe(path, cache=False)
    assert forged_at <= set(info.keyframes.tolist())
    plain = synthetic.decode_all(path)
    wanted = sorted({k + d for k in forged_at for d in (1, 7, 20)} | {45, 119})
    for backend in ("pyav", "ffmpeg"):
        got = 0
        for frame in decode_frames(info, wanted, workers=1, backend=backend):
            got += 1
            err = f"{backend} {frame.index}"
            np.testing.assert_array_equal(frame.image, plain[frame.index], err_msg=err)
        assert got == len(wanted), backend
    for backend, reads in (("pyav", wanted), ("ffmpeg", wanted[::3])):
        for i in reads:  # a new reader each: every read is a first seek
            with VideoReader(path, backend=backend, cache_bytes=0, prefetch=0) as video:
                np.testing.assert_array_equal(video.read(i), plain[i], err_msg=f"{backend} {i}")


def test_the_packet_choice_and_frame_times_equal_a_search_of_the_bounds(kinds):
    # A jump decides per packet with one comparison (the bound before the
    # first wanted frame) and times frames with an int division: both must
    # give what a search of the midpoints with an exact time gives, also for
    # timestamps on a midpoint and one tick either side of it.
    from fractions import Fraction

    info = probe(kinds["b_pyramid"])
    with PyAVStream(info, 0, first=0, seek=False) as stream:
        base = stream._time_base
        bounds = (info.frame_pts[1:] + info.frame_pts[:-1]) / 2
        ticks = {t + d for b in bounds for t in (round(b / base),) for d in (-1, 0, 1)}
        ticks |= {round(Fraction(b) / base) for b in bounds}  # exactly on a midpoint
        for first in (0, 1, 7, info.frame_count - 1, info.frame_count + 3):
            stream.restart(0, first=first, seek=False)
            for t in ticks:
                exact = float(t * base)
                assert t * base.numerator / base.denominator == exact
                index = int(np.searchsorted(bounds, t * float(base), "right"))
                packet = type("Packet", (), {"pts": t})()
                assert stream._wanted_packet(packet) == (index >= first), (first, t)


def _growing_delay_segments(folder: Path, *, opening: str = "bframes=0") -> Path:
    """H.264 in MPEG-TS whose decoder delay grows mid-stream: frames 0-39
    without B-frames (keyframes 0, 20), then frames 40-119 with up to three
    adaptive B-frames in a pyramid (keyframes 40, 80), so the decoder holds
    back no frame at first and two from frame 40 on. A small square moving
    on some runs of frames makes b-adapt vary the B-frame runs."""
    size = f"{synthetic.WIDTH}x{synthetic.HEIGHT}"
    parts = []
    for first, count, params in (
        (0, 40, f"{opening}:keyint=20:min-keyint=20"),
        (40, 80, "bframes=3:b-adapt=2:b-pyramid=normal:keyint=40:min-keyint=40"),
    ):
        images = []
        for i in range(first, first + count):
            image = synthetic.index_image(i)
            if (i // 9) % 2:
                x = (i * 7) % 150
                image[112:118, x : x + 6] = (255, 0, 0)
            images.append(image.tobytes())
        part = folder / f"part{first}.ts"
        synthetic.run(
            [
                *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", size, "-framerate", "25"),
                *("-i", "pipe:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20"),
                *("-pix_fmt", "yuv420p", "-x264-params", f"{params}:scenecut=0:repeat-headers=1"),
                *("-output_ts_offset", f"{first / 25:g}", "-f", "mpegts", str(part)),
            ],
            stdin=b"".join(images),
        )
        parts.append(part.read_bytes())
    joined = folder / f"growing_{opening.replace('=', '').replace(':', '_')}.ts"
    joined.write_bytes(b"".join(parts))
    return joined


@pytest.fixture(scope="module")
def growing_delay(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("growing_delay")
    ts = _growing_delay_segments(d)
    made = {"ts": ts}
    for kind in ("mkv", "avi"):
        made[kind] = d / f"growing.{kind}"
        synthetic.run(["-i", str(ts), "-c", "copy", str(made[kind])])
    return made


def _decoder_delays(path: Path) -> list[int]:
    """Per frame, how many packets the decoder (one thread) had been given beyond it."""
    import av

    delays = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "SLICE", 1
        sent = 0
        for packet in container.demux(stream):
            sent += bool(packet.size)
            for _ in stream.codec_context.decode(packet):
                delays.append(sent - len(delays) - 1)
    return delays


@pytest.mark.parametrize("kind", ["ts", "mkv"])
def test_a_reorder_delay_growing_mid_stream_gives_the_full_decodes_frames(growing_delay, kind):
    """Every still and every reader frame (jumps into either part, steps across
    the change) is the full decode's, with both sources."""
    path = growing_delay[kind]
    delays = _decoder_delays(path)
    assert set(delays[:38]) == {0} and max(delays[40:]) == 2  # it really grows
    info = probe(path, cache=False)
    reference = synthetic.decode_all(path)
    assert [synthetic.decode_index(image) for image in reference] == list(range(120))
    assert info.frame_count == 120 and info.keyframes.tolist() == [0, 20, 40, 80]
    wanted = _scattered(120, seed=11)
    for backend in ("pyav", "ffmpeg"):
        missing: list[int] = []
        got = list(decode_frames(info, wanted, workers=2, backend=backend, missing=missing))
        assert missing == [] and sorted(f.index for f in got) == wanted, backend
        for frame in got:
            err = f"{backend} {frame.index}"
            np.testing.assert_array_equal(frame.image, reference[frame.index], err_msg=err)
        with VideoReader(path, info=info, backend=backend, cache_bytes=0, prefetch=0) as video:
            for i in [119, 41, 40, 85, 39, 79, 20, 60, 42]:
                err = f"{backend} {i}"
                np.testing.assert_array_equal(video.read(i), reference[i], err_msg=err)
            for i, image in enumerate(video.iter(start=30, stop=50), start=30):
                np.testing.assert_array_equal(image, reference[i], err_msg=f"{backend} {i}")


def test_an_avi_whose_reorder_delay_grows_gives_exact_frames_or_a_clear_error(
    growing_delay, tmp_path
):
    """AVI stores no frame times: from frame 40 on, where the decoder's delay
    grows, the frame table's times belong to the neighbours. Every frame either
    source gives is the full decode's; the others are reported missing, with
    one line naming the file and the reason, never replaced by a neighbour."""
    path = growing_delay["avi"]
    info = probe(path, cache=False)
    reference = synthetic.decode_all(path)
    assert [synthetic.decode_index(image) for image in reference] == list(range(120))
    assert info.frame_count == 120 and info.keyframes.tolist() == [0, 20, 40, 80]
    wanted = _scattered(120, seed=11)
    for backend in ("pyav", "ffmpeg"):
        missing: list[int] = []
        reasons: list[str] = []
        got = list(
            decode_frames(
                info, wanted, workers=2, backend=backend, missing=missing, reasons=reasons
            )
        )
        assert got, backend
        assert reasons and all("reorder delay changes mid-stream" in r for r in reasons), reasons
        for frame in got:
            err = f"{backend} {frame.index}"
            np.testing.assert_array_equal(frame.image, reference[frame.index], err_msg=err)
        assert sorted([f.index for f in got] + missing) == wanted, backend
        assert missing and min(missing) >= 40, backend
        assert [i for i in wanted if i < 40] == sorted(f.index for f in got), backend
        with pytest.raises(DecodeError) as caught:
            list(decode_frames(info, [60, 100], workers=1, backend=backend))
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        assert "reorder delay" in message, message
        with VideoReader(path, info=info, backend=backend, cache_bytes=0, prefetch=0) as video:
            for i in [119, 39, 41, 20, 60, 0, 85]:
                if i < 40:
                    np.testing.assert_array_equal(video.read(i), reference[i], err_msg=f"{i}")
                else:
                    with pytest.raises(DecodeError, match="reorder delay"):
                        video.read(i)
            stepped = []
            with pytest.raises(DecodeError, match="reorder delay"):
                for image in video.iter(start=30, stop=50):
                    stepped.append(image)
            assert len(stepped) == 10, backend
            for i, image in enumerate(stepped, start=30):
                np.testing.assert_array_equal(image, reference[i], err_msg=f"{backend} {i}")
    # Extraction writes the stills it can and says why the others are not written.
    from napari_video_extract.core.extract import extract_video
    from napari_video_extract.core.sampling_specs import Interval

    result = extract_video(path, tmp_path / "stills", Interval(every=0.4), fmt="png", info=info)
    assert result.missing and min(result.missing) >= 40 and len(result.records) == 4
    assert "reorder delay changes mid-stream" in result.error and "\n" not in result.error
    for record in result.records:
        still = np.asarray(Image.open(tmp_path / "stills" / record.file))
        np.testing.assert_array_equal(still, reference[record.frame], err_msg=record.file)


def test_an_avi_whose_reorder_delay_grows_from_one_to_two_is_refused_too(tmp_path):
    """Frames 0-39 with single B-frames (the decoder holds back one frame), then
    the B-pyramid (two): PyAV's ``has_b_frames`` says only "some", the check
    reads the depth. Every frame given is the full decode's, the rest missing."""
    ts = _growing_delay_segments(tmp_path, opening="bframes=1:b-adapt=0:b-pyramid=none")
    path = tmp_path / "growing_from_one.avi"
    synthetic.run(["-i", str(ts), "-c", "copy", str(path)])
    delays = _decoder_delays(path)
    assert set(delays[2:38]) == {1} and max(delays[40:]) == 2  # it really grows
    info = probe(path, cache=False)
    reference = synthetic.decode_all(path)
    assert [synthetic.decode_index(image) for image in reference] == list(range(120))
    wanted = _scattered(120, seed=5)
    for backend in ("pyav", "ffmpeg"):
        missing: list[int] = []
        got = list(decode_frames(info, wanted, workers=2, backend=backend, missing=missing))
        for frame in got:
            err = f"{backend} {frame.index}"
            np.testing.assert_array_equal(frame.image, reference[frame.index], err_msg=err)
        assert sorted([f.index for f in got] + missing) == wanted, backend
        assert missing and min(missing) >= 40 - 2, backend

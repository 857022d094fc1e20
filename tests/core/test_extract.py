"""extract_video / extract_batch / the decode plan, checked on pixels and frames.csv.

Every synthetic frame shows its own index (``synthetic.decode_index``), so each
written still is checked against the frame the sampling definition names.
"""

from __future__ import annotations

import csv
import itertools
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import synthetic
from napari_video_extract.core.decode import (
    DecodeStats,
    FrameStream,
    decode_frames,
    plan_segments,
)
from napari_video_extract.core.decode_plan import (
    PIECES_PER_WORKER,
    DecodeCost,
    decode_cost,
    longest_first,
)
from napari_video_extract.core.errors import InputError, OutputError
from napari_video_extract.core.extract import (
    HeadTail,
    Interval,
    extract_batch,
    extract_video,
    output_folders,
    validate_template,
)
from napari_video_extract.core.probe import VideoInfo, probe

CFR_TIMES = np.arange(100) * 0.04


def _read_csv(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(folder / "frames.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _stills(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg", ".webp"))


def _frame_on_screen(true_times: np.ndarray, t: float) -> int:
    """Reference: last frame with presentation time <= t (rational-safe)."""
    return max([i for i, ft in enumerate(true_times) if ft <= t + 1e-9], default=0)


def _reference_interval(every: float, start: float, end: float) -> list[float]:
    s, e, n = Fraction(str(start)), Fraction(str(every)), Fraction(str(end))
    return [float(s + k * e) for k in range(10_000) if s + k * e < n]


def _expected_frames(true_times, duration, spec) -> list[int]:
    duration = round(duration, 9)  # 4.7010000000000005 is 4.701
    if isinstance(spec, Interval):
        times = _reference_interval(spec.every, spec.start, min(spec.end or duration, duration))
    else:
        times = _reference_interval(spec.every, 0.0, min(spec.head, duration)) if spec.head else []
        if spec.tail:
            start = max(0.0, round(duration - spec.tail, 9))
            times += _reference_interval(spec.every, start, duration)
    return sorted({_frame_on_screen(true_times, t) for t in times})


# --------------------------------------------------------------------------- the right frames

SPECS = {
    "interval": Interval(every=0.3),
    "interval-window": Interval(every=0.25, start=0.5, end=2.1),
    "interval-fine": Interval(every=0.1),
    "head-tail": HeadTail(head=1.0, tail=1.0, every=0.2),
    "head-tail-overlap": HeadTail(head=2.5, tail=2.5, every=0.5),
}


@pytest.fixture(
    params=["cfr_bframes", "vfr", "ts_start_1.4s", "rotated", "with_audio"], scope="module"
)
def truth_video(request) -> tuple[Path, np.ndarray]:
    """(video, true frame times) for each synthetic kind."""
    name = request.param
    if name == "cfr_bframes":
        return request.getfixturevalue("cfr_video"), CFR_TIMES
    if name == "vfr":
        return request.getfixturevalue("vfr_video")
    if name == "ts_start_1.4s":
        return request.getfixturevalue("ts_video"), CFR_TIMES
    if name == "rotated":
        return request.getfixturevalue("rotated_video"), CFR_TIMES[:50]
    return request.getfixturevalue("audio_video"), CFR_TIMES[:75]


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_every_still_is_the_frame_the_definition_names(truth_video, spec_name, tmp_path):
    video, true_times = truth_video
    spec = SPECS[spec_name]
    info = probe(video)
    result = extract_video(video, tmp_path, spec, fmt="png")
    expected = _expected_frames(true_times, info.duration, spec)
    assert result.ok and result.missing == []
    assert result.written == result.planned == len(expected)
    assert sorted(r.frame for r in result.records) == expected
    for rec in result.records:
        image = _image(tmp_path / rec.file)
        assert image.shape == (120, 160, 3)  # upright, display size
        assert synthetic.decode_index(image) == rec.frame, rec.file
        assert rec.time == pytest.approx(true_times[rec.frame], abs=1e-6)
    assert len(_stills(tmp_path)) == len(expected)


def test_default_jpeg_stills_show_the_right_frames(cfr_video, tmp_path):
    result = extract_video(cfr_video, tmp_path, Interval(every=1.0))
    files = _stills(tmp_path)
    assert [p.suffix for p in files] == [".jpg"] * 4
    assert [synthetic.decode_index(_image(p)) for p in files] == [0, 25, 50, 75]
    assert result.written == 4


def test_png_pixels_equal_the_decoded_frame(cfr_video, tmp_path):
    reference = synthetic.decode_all(cfr_video)  # a plain ffmpeg decode to RGB
    result = extract_video(cfr_video, tmp_path, Interval(every=0.44), fmt="png")
    assert result.written == 10
    for rec in result.records:
        np.testing.assert_array_equal(_image(tmp_path / rec.file), reference[rec.frame])


@pytest.mark.media
def test_png_pixels_equal_the_decoded_frame_real_clip(media_dir, tmp_path):
    video = media_dir / "tree_cinepak.avi"  # 68 frames out of 444 packets
    reference = synthetic.decode_all(video)
    assert len(reference) == 68
    result = extract_video(video, tmp_path, Interval(every=5.0), fmt="png")
    info = result.info
    assert result.written == len(
        {
            int(np.searchsorted(info.frame_times, t, "right") - 1)
            for t in np.arange(0, info.duration, 5.0)
        }
    )
    for rec in result.records:
        np.testing.assert_array_equal(_image(tmp_path / rec.file), reference[rec.frame])


@pytest.mark.media
def test_city_start_time_frames(media_dir, tmp_path):
    """city starts at 0.54 s: time 0 is its first frame, not 0.54 s into it."""
    video = media_dir / "city_cc0_mpeg2.mpg"
    result = extract_video(video, tmp_path, HeadTail(head=0.2, tail=0.2, every=0.1), fmt="png")
    assert [r.frame for r in result.records] == [0, 2, 185, 187]
    reference = synthetic.decode_some(video, [0, 2, 185, 187])
    for rec in result.records:
        np.testing.assert_array_equal(_image(tmp_path / rec.file), reference[rec.frame])


# --------------------------------------------------------------------------- frames.csv, names


def test_frames_csv_columns_values_and_order(vfr_video, tmp_path):
    video, true_times = vfr_video
    extract_video(video, tmp_path, Interval(every=0.3), fmt="png")
    columns, rows = _read_csv(tmp_path)
    assert columns[:4] == ["file", "video", "time", "frame"]
    assert rows, "frames.csv is empty"
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times)
    for row in rows:
        assert row["video"] == video.name
        frame = int(row["frame"])
        assert float(row["time"]) == pytest.approx(true_times[frame], abs=1e-6)
        assert (tmp_path / row["file"]).is_file()
        assert synthetic.decode_index(_image(tmp_path / row["file"])) == frame
    assert sorted(r["file"] for r in rows) == [p.name for p in _stills(tmp_path)]


def test_names_sort_in_time_order_and_show_the_timestamp(vfr_video, tmp_path):
    video, true_times = vfr_video
    result = extract_video(video, tmp_path, Interval(every=0.3), fmt="png")
    by_time = [r.file for r in sorted(result.records, key=lambda r: r.time)]
    assert [p.name for p in _stills(tmp_path)] == by_time
    for rec in result.records:
        ms = round(true_times[rec.frame] * 1000)
        stamp = (
            f"{ms // 3_600_000:02d}-{ms // 60_000 % 60:02d}-{ms // 1000 % 60:02d}.{ms % 1000:03d}"
        )
        assert stamp in rec.file
        assert rec.file.startswith(video.stem + "_")


def test_name_template_fields(cfr_video, tmp_path):
    result = extract_video(
        cfr_video,
        tmp_path,
        Interval(every=1.0),
        fmt="png",
        name_template="shot-{time_ms:06d}-{frame}-{index}",
    )
    assert sorted(r.file for r in result.records) == [
        "shot-000000-0-0.png",
        "shot-001000-25-1.png",
        "shot-002000-50-2.png",
        "shot-003000-75-3.png",
    ]
    assert [synthetic.decode_index(_image(p)) for p in _stills(tmp_path)] == [0, 25, 50, 75]


@pytest.mark.parametrize(
    "template", ["../x{frame}", "/abs/{frame}", "{bogus}", "a/{frame}", ".hidden{frame}", "{"]
)
def test_bad_name_templates_are_rejected_before_writing(cfr_video, tmp_path, template):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="template"):
        validate_template(template)
    with pytest.raises(ValueError, match="template"):
        extract_video(cfr_video, out, Interval(every=1.0), name_template=template)
    assert not any(tmp_path.rglob("*.jpg"))


def test_template_giving_one_name_to_two_stills_is_rejected(cfr_video, tmp_path):
    with pytest.raises(ValueError, match="same name"):
        extract_video(cfr_video, tmp_path, Interval(every=1.0), name_template="{stem}")
    assert not any(tmp_path.glob("*.jpg"))


# --------------------------------------------------------------------------- resume, overwrite


def test_second_run_resumes_and_writes_nothing(cfr_video, tmp_path):
    first = extract_video(cfr_video, tmp_path, Interval(every=0.5), fmt="png")
    stamps = {p.name: p.stat().st_mtime_ns for p in _stills(tmp_path)}
    csv_before = (tmp_path / "frames.csv").read_bytes()
    second = extract_video(cfr_video, tmp_path, Interval(every=0.5), fmt="png")
    assert (first.written, second.written, second.resumed) == (8, 0, 8)
    assert {p.name: p.stat().st_mtime_ns for p in _stills(tmp_path)} == stamps
    assert (tmp_path / "frames.csv").read_bytes() == csv_before


def test_resume_completes_a_partial_run(cfr_video, tmp_path):
    extract_video(cfr_video, tmp_path, Interval(every=1.0), fmt="png")  # frames 0,25,50,75
    result = extract_video(cfr_video, tmp_path, Interval(every=0.5), fmt="png")
    assert (result.written, result.resumed) == (4, 4)
    _, rows = _read_csv(tmp_path)
    assert [int(r["frame"]) for r in rows] == [0, 12, 25, 37, 50, 62, 75, 87]
    assert len({r["file"] for r in rows}) == 8


def test_deleted_still_is_left_alone_on_resume_and_redone_by_overwrite(cfr_video, tmp_path):
    # Recorded stills are skipped even when moved away (e.g. by dedup); only
    # overwrite=True redoes them.
    extract_video(cfr_video, tmp_path, Interval(every=1.0), fmt="png")
    victim = _stills(tmp_path)[1]
    victim.unlink()
    again = extract_video(cfr_video, tmp_path, Interval(every=1.0), fmt="png")
    assert (again.written, again.resumed) == (0, 4)
    assert not victim.exists()
    redo = extract_video(cfr_video, tmp_path, Interval(every=1.0), fmt="png", overwrite=True)
    assert redo.written == 4
    assert synthetic.decode_index(_image(victim)) == 25
    _, rows = _read_csv(tmp_path)
    assert [int(r["frame"]) for r in rows] == [0, 25, 50, 75]  # no duplicate rows


def test_overwrite_rewrites_recorded_stills(cfr_video, tmp_path):
    extract_video(cfr_video, tmp_path, Interval(every=1.0), fmt="png")
    for p in _stills(tmp_path):  # damage our own stills
        p.write_bytes(b"garbage")
    result = extract_video(cfr_video, tmp_path, Interval(every=1.0), fmt="png", overwrite=True)
    assert result.written == 4 and result.resumed == 0
    assert [synthetic.decode_index(_image(p)) for p in _stills(tmp_path)] == [0, 25, 50, 75]


@pytest.mark.parametrize("overwrite", [False, True])
def test_user_file_at_an_output_name_is_never_overwritten(cfr_video, tmp_path, overwrite):
    probe_dir = tmp_path / "names"
    names = [r.file for r in extract_video(cfr_video, probe_dir, Interval(every=1.0)).records]
    out = tmp_path / "out"
    out.mkdir()
    users = out / names[2]
    users.write_bytes(b"my holiday photo")
    with pytest.raises(OutputError) as excinfo:
        extract_video(cfr_video, out, Interval(every=1.0), overwrite=overwrite)
    assert names[2] in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert users.read_bytes() == b"my holiday photo"
    _, rows = _read_csv(out)
    assert sorted(r["file"] for r in rows) == sorted(n for n in names if n != names[2])
    for name in set(names) - {names[2]}:
        assert synthetic.decode_index(_image(out / name)) in (0, 25, 75)


def test_stale_temporary_file_does_not_disturb(cfr_video, tmp_path):
    names = [r.file for r in extract_video(cfr_video, tmp_path / "n", Interval(every=1.0)).records]
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".{names[0]}.tmp-999999-1"
    stale.write_bytes(b"half an image from a killed run")
    stale_csv = out / ".frames.csv.tmp-999999"
    stale_csv.write_text("file,video\n")
    result = extract_video(cfr_video, out, Interval(every=1.0))
    # The run holds the folder lock, so leftovers of a killed run are removed.
    assert not stale.exists() and not stale_csv.exists()
    assert result.written == 4
    assert synthetic.decode_index(_image(out / names[0])) == 0
    _, rows = _read_csv(out)
    assert sorted(r["file"] for r in rows) == sorted(names)


def test_cancelled_run_leaves_complete_stills_and_a_rerun_completes(cfr_video, tmp_path):
    import threading

    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 3:
            cancel.set()

    first = extract_video(
        cfr_video,
        tmp_path,
        Interval(every=0.2),
        fmt="png",
        workers=1,
        cancel=cancel,
        progress=progress,
    )
    assert 3 <= first.written < first.planned == 20
    partial = _stills(tmp_path)
    assert len(partial) == first.written  # no half-written or unrecorded image
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    for p in partial:
        synthetic.decode_index(_image(p))  # each one complete and readable
    second = extract_video(cfr_video, tmp_path, Interval(every=0.2), fmt="png")
    assert second.resumed == first.written
    assert second.written == 20 - first.written
    _, rows = _read_csv(tmp_path)
    assert [int(r["frame"]) for r in rows] == list(range(0, 100, 5))
    assert [synthetic.decode_index(_image(tmp_path / r["file"])) for r in rows] == list(
        range(0, 100, 5)
    )


def test_folder_of_another_video_is_refused(cfr_video, audio_video, tmp_path):
    extract_video(cfr_video, tmp_path, Interval(every=1.0))
    with pytest.raises(OutputError, match="another video"):
        extract_video(audio_video, tmp_path, Interval(every=1.0))
    _, rows = _read_csv(tmp_path)
    assert {r["video"] for r in rows} == {cfr_video.name}


def test_output_folder_below_a_file_is_an_output_error(cfr_video, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    with pytest.raises(OutputError) as excinfo:
        extract_video(cfr_video, blocker / "out", Interval(every=1.0))
    assert "file.txt" in str(excinfo.value)
    assert blocker.read_text() == "I am a file"


# --------------------------------------------------------------------------- decode plan


def test_seeking_to_every_keyframe_gives_the_exact_frames(truth_video):
    """Each keyframe-started run (what parallel decoding does) decodes exactly
    the frames a single sequential run decodes."""
    video, _ = truth_video
    info = probe(video)
    wanted = tuple(range(0, info.frame_count, 3))
    with FrameStream(info, 0, wanted, seek=False) as stream:
        sequential = {f.index: f.image.copy() for f in stream}
    assert sorted(sequential) == list(wanted)
    keys = [int(k) for k in info.keyframes]
    for lo, hi in zip(keys, [*keys[1:], info.frame_count], strict=True):
        targets = tuple(i for i in wanted if lo <= i < hi)
        if not targets or lo == 0:
            continue
        with FrameStream(info, lo, targets, seek=True) as stream:
            got = {f.index: f.image for f in stream}
        assert sorted(got) == list(targets), f"seek to keyframe {lo}"
        for i in targets:
            np.testing.assert_array_equal(got[i], sequential[i])
            assert synthetic.decode_index(got[i]) == i


def test_parallel_decode_equals_sequential(cfr_video):
    info = probe(cfr_video)
    wanted = list(range(0, 100, 7))
    one = {f.index: f.image for f in decode_frames(info, wanted, workers=1)}
    two = {f.index: f.image for f in decode_frames(info, wanted, workers=2)}
    assert sorted(one) == sorted(two) == wanted
    for i in wanted:
        np.testing.assert_array_equal(one[i], two[i])
        assert synthetic.decode_index(one[i]) == i


def _long_info(minutes: float = 10, fps: int = 25, gop: int = 250) -> VideoInfo:
    """A probe result for a 720p film (only the frame table matters to the planner)."""
    n = int(minutes * 60 * fps)
    return VideoInfo(
        path=Path("/nonexistent/film.mp4"),
        codec="h264",
        width=1280,
        height=720,
        rotation=0,
        container_start=0.0,
        first_pts=0.0,
        frame_times=np.arange(n) / fps,
        keyframes=np.arange(0, n, gop),
        duration=n / fps,
        nominal_fps=fps,
        avg_fps=fps,
        variable_frame_rate=False,
    )


@pytest.fixture
def decoder_stats(monkeypatch) -> list[DecodeStats]:
    """What the decoder really ran during ``extract_video`` (one entry per video)."""
    from napari_video_extract.core import extract as extract_module

    runs: list[DecodeStats] = []

    def counted(*args, **kwargs):
        kwargs["stats"] = DecodeStats()
        runs.append(kwargs["stats"])
        return decode_frames(*args, **kwargs)

    monkeypatch.setattr(extract_module, "decode_frames", counted)
    return runs


@pytest.fixture(scope="module")
def vga_video(tmp_path_factory) -> Path:
    """1000 frames (40 s at 25 fps) of 640 x 480, a keyframe every second: frames
    large enough that the planner seeks rather than decoding 800 frames through."""
    path = tmp_path_factory.mktemp("vga") / "vga_1000f.mp4"
    return synthetic.make_cfr(path, frames=1000, gop=25, size=(640, 480))


@pytest.mark.parametrize("workers", [1, 2])
def test_tail_is_reached_by_seeking(vga_video, tmp_path, decoder_stats, workers):
    video = vga_video
    info = probe(video)
    result = extract_video(
        video, tmp_path, HeadTail(head=4, tail=4, every=1), fmt="png", workers=workers
    )
    frames = [r.frame for r in result.records]
    assert frames == [0, 25, 50, 75, 900, 925, 950, 975]
    for r in result.records:
        assert synthetic.decode_index(np.asarray(Image.open(tmp_path / r.file))) == r.frame
    (stats,) = decoder_stats
    # The decoder's own count of the frames it decoded: the head, and the tail
    # reached by seeking (one GOP before each tail run at most), never the middle.
    planned = plan_segments(info, frames, workers=workers, cost=decode_cost(info, stats.backend))
    assert stats.runs == len(planned)
    assert stats.frames_decoded <= sum(s.end - s.start + 1 for s in planned) + 2 * len(planned)
    assert stats.frames_decoded < 0.25 * info.frame_count


def test_plan_for_a_long_film_skips_the_middle():
    """The planner alone, on a 10-minute film's frame table (no decoding)."""
    from napari_video_extract.core.sampling import head_tail_times, samples_for

    info = _long_info()
    times = head_tail_times(info.duration, head=10, tail=10, every=1)
    frames = [s.frame for s in samples_for(info.frame_times, times)]
    covered = set()
    for seg in plan_segments(info, frames, workers=2):
        assert seg.start in set(info.keyframes.tolist())
        covered.update(range(seg.start, seg.end + 1))
    assert not covered & set(range(20 * 25, info.frame_count - 20 * 25))


def test_sparse_interval_seeks_and_dense_interval_decodes_sequentially():
    info = _long_info()
    sparse = plan_segments(info, range(0, info.frame_count, 60 * 25))  # every 60 s
    assert len(sparse) == 10
    assert sum(s.end - s.start + 1 for s in sparse) == 10
    dense = plan_segments(info, range(0, info.frame_count, 12))  # every 0.5 s
    assert len(dense) == 1


@pytest.mark.parametrize(("suffix", "runs"), [(".ts", 1), (".mp4", 4)])
def test_pyav_runs_start_dearer_where_seeks_are_inexact(tmp_path, suffix, runs):
    """MPEG-TS seeks by timestamp and often lands after the keyframe (a retry
    from earlier): 4 stills 60 frames apart are one run there (at the cheap
    start cost: 4 planned runs, 7 started, 132 frames decoded instead of 126);
    MP4 seeks to the indexed keyframe: 4 runs, none retried."""
    video = synthetic.make_cfr(tmp_path / f"v{suffix}", frames=200, size=(640, 480))
    info = probe(video, cache=False)
    wanted = [0, 60, 120, 199]
    assert len(plan_segments(info, wanted, workers=1, cost=decode_cost(info, "pyav"))) == runs
    stats = DecodeStats()
    got = list(decode_frames(info, wanted, workers=1, backend="pyav", stats=stats))
    shown = sorted((f.index, synthetic.decode_index(f.image)) for f in got)
    assert shown == [(i, i) for i in wanted]
    assert stats.runs == runs


@pytest.mark.media
def test_pyav_runs_on_a_real_mpeg_ps_clip_are_not_retried_seeks(media_dir):
    """city_cc0_mpeg2.mpg, 4 stills: 2 runs and 122 frames (8 runs and 257 frames
    when a run was costed as if its seek were exact)."""
    info = probe(media_dir / "city_cc0_mpeg2.mpg")
    n = info.frame_count
    wanted = sorted({n // 3, n // 2, (4 * n) // 5, n - 1})
    stats, missing = DecodeStats(), []
    got = list(
        decode_frames(info, wanted, workers=1, backend="pyav", stats=stats, missing=missing)
    )
    assert sorted(f.index for f in got) == wanted and missing == []
    assert stats.runs <= 2


def test_parallel_plan_splits_at_keyframes_and_keeps_every_target():
    info = _long_info()
    wanted = list(range(0, info.frame_count, 50))
    one = plan_segments(info, wanted, workers=1)
    two = plan_segments(info, wanted, workers=2)
    assert len(two) >= 2 > len(one) - 1
    keys = set(info.keyframes.tolist())
    assert all(s.start in keys for s in two)
    assert [i for s in two for i in s.targets] == wanted
    assert all(a.end < b.start for a, b in itertools.pairwise(two))


def test_parallel_plan_leaves_no_run_that_one_decoder_does_alone():
    """A run that goes on through many keyframes (each still just before the next
    keyframe, so going on costs a frame, a new run more) is cut at keyframes into
    pieces small enough that two decoders finish together."""
    info = _long_info()
    cost = DecodeCost(startup=3.0, passing=0.65)
    wanted = [int(k) - 2 for k in info.keyframes[1:]]
    (whole,) = plan_segments(info, wanted, workers=1, cost=cost)
    assert whole.start == 0 and whole.targets == tuple(wanted)
    pieces = plan_segments(info, wanted, workers=2, cost=cost)
    assert [i for s in pieces for i in s.targets] == wanted
    keys = set(info.keyframes.tolist())
    assert all(s.start in keys for s in pieces)
    total = sum(s.work(cost) for s in pieces)
    assert max(s.work(cost) for s in pieces) <= 1.5 * total / (PIECES_PER_WORKER * 2)
    # Cutting costs a start per piece and saves the frame passed to reach its keyframe.
    assert total <= whole.work(cost) + len(pieces) * cost.startup


def test_longest_runs_are_given_out_first():
    info = _long_info()
    cost = DecodeCost(startup=3.0, passing=0.65)
    segments = plan_segments(info, [10, 300, 510, 620, 749, 2000], workers=2, cost=cost)
    order = longest_first(segments, cost)
    assert sorted(order, key=lambda s: s.start) == segments
    work = [s.work(cost) for s in order]
    assert work == sorted(work, reverse=True) and work[0] > work[-1]


def test_one_decoder_gives_frames_in_index_order(cfr_video):
    info = probe(cfr_video)
    wanted = [3, 30, 31, 64, 97]
    assert [f.index for f in decode_frames(info, wanted, workers=1)] == wanted


@pytest.mark.media
def test_real_clip_head_tail_skips_the_middle(media_dir, tmp_path, decoder_stats):
    video = media_dir / "vtest_surveillance_msmpeg4.avi"  # 795 frames, keyframes ~25 s apart
    info = probe(video)
    result = extract_video(video, tmp_path, HeadTail(head=2, tail=2, every=1), info=info)
    assert [r.frame for r in result.records] == [0, 10, 775, 785]
    (stats,) = decoder_stats
    # What ffmpeg decoded: the head run (0..10) and the tail run from the
    # keyframe before 775, not the 600 frames in between.
    tail_start = info.keyframe_before(775)
    assert tail_start > 100
    assert stats.frames_decoded <= 11 + (785 - tail_start + 1) + 4


# --------------------------------------------------------------------------- batches


def test_same_stem_videos_get_different_folders(cfr_video, audio_video, tmp_path):
    a = tmp_path / "in" / "x" / "clip.mp4"
    b = tmp_path / "in" / "y" / "clip.mp4"
    c = tmp_path / "in" / "x" / "clip.mkv"
    for path, src in ((a, cfr_video), (b, audio_video), (c, cfr_video)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(src.read_bytes())
    folders = output_folders([a, b, c], tmp_path / "out")
    assert len(set(folders.values())) == 3
    batch = extract_batch([a, b, c], tmp_path / "out", Interval(every=2.0), fmt="png")
    assert not batch.failures
    for video, folder in folders.items():
        _, rows = _read_csv(folder)
        assert {r["video"] for r in rows} == {video.name}
        assert [int(r["frame"]) for r in rows] == [0, 50]
    assert output_folders([a, b, c], tmp_path / "out") == folders  # deterministic


def test_jobs_2_equals_jobs_1(cfr_video, vfr_video, ts_video, tmp_path):
    videos = [cfr_video, vfr_video[0], ts_video]
    spec = HeadTail(head=1, tail=1, every=0.3)
    r1 = extract_batch(videos, tmp_path / "j1", spec, jobs=1, fmt="png")
    r2 = extract_batch(videos, tmp_path / "j2", spec, jobs=2, fmt="png")
    assert not r1.failures and not r2.failures
    assert r1.written == r2.written > 0
    for folder in (tmp_path / "j1").iterdir():
        other = tmp_path / "j2" / folder.name
        assert (folder / "frames.csv").read_bytes() == (other / "frames.csv").read_bytes()
        for p in _stills(folder):
            np.testing.assert_array_equal(_image(p), _image(other / p.name))


def test_batch_goes_on_past_bad_files_and_reports_them(cfr_video, bad_files, tmp_path):
    bad = [bad_files[k] for k in ("text", "empty", "truncated", "audio_mp4", "hls", "missing")]
    videos = [bad[0], bad[1], cfr_video, *bad[2:]]
    batch = extract_batch(videos, tmp_path, Interval(every=1.0), fmt="png", jobs=2)
    by_video = {Path(r.video).name: r for r in batch.results}
    good = by_video[cfr_video.name]
    assert good.ok and good.written == 4
    assert len(batch.failures) == len(bad)
    for r in batch.failures:
        assert r.error and "\n" not in r.error
    assert batch.written == 4
    folder = output_folders([Path(v) for v in videos], tmp_path)[cfr_video]
    assert [synthetic.decode_index(_image(p)) for p in _stills(folder)] == [0, 25, 50, 75]


def test_bad_file_raises_input_error_naming_it(bad_files, tmp_path):
    for key in ("text", "truncated", "audio_m4a", "ffconcat"):
        with pytest.raises(InputError) as excinfo:
            extract_video(bad_files[key], tmp_path / key, Interval(every=1.0))
        assert str(excinfo.value).startswith(str(bad_files[key].resolve()))
    assert not list(tmp_path.rglob("*.jpg"))


def test_playlist_target_content_never_shows_up(bad_files, tmp_path):
    for key in ("hls", "ffconcat"):
        with pytest.raises(InputError):
            extract_video(bad_files[key], tmp_path / key, Interval(every=1.0), fmt="png")
        written = list(tmp_path.rglob("*.png"))
        assert written == [], f"{key}: the playlist's target was decoded"


def test_start_past_the_end_is_a_value_error(cfr_video, tmp_path):
    with pytest.raises(ValueError, match="past the end"):
        extract_video(cfr_video, tmp_path, Interval(every=1.0, start=10.0))


def test_video_shorter_than_head(cfr_video, tmp_path):
    result = extract_video(cfr_video, tmp_path, HeadTail(head=60, every=1.0), fmt="png")
    assert [r.frame for r in result.records] == [0, 25, 50, 75]


def test_odd_names_extract(cfr_video, tmp_path):
    names = ["-rf.mp4", "with space.MP4", "vidéo_日本.mp4"]
    paths = []
    for name in names:
        p = tmp_path / "in" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(cfr_video.read_bytes())
        paths.append(p)
    batch = extract_batch(paths, tmp_path / "out", Interval(every=2.0), fmt="png")
    assert not batch.failures
    for p in paths:
        folder = tmp_path / "out" / p.stem
        assert [synthetic.decode_index(_image(s)) for s in _stills(folder)] == [0, 50]
        assert all(s.name.startswith(p.stem) for s in _stills(folder))
    assert sorted(os.listdir(tmp_path / "out")) == sorted(p.stem for p in paths)

"""--pick sharpest and --skip-blank: the right frame for each instant, exact records."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import synthetic
from napari_video_extract.core.extract import Interval, extract_video
from napari_video_extract.core.manifest import COLUMNS, PICK_COLUMNS, read_manifest
from napari_video_extract.core.pick import (
    BLANK_STD,
    Pick,
    best_candidate,
    measure,
    sample_windows,
)
from napari_video_extract.core.probe import probe
from napari_video_extract.core.sampling import frames_at, samples_for

FPS = 25
EVERY = 0.5
WINDOW = 0.4  # +-0.2 s = +-5 frames


def exact_frames(count: int) -> list[int]:
    times = np.arange(0, count / FPS - 1e-9, EVERY)
    return frames_at(np.arange(count) / FPS, times).tolist()


def sharp_frame(k: int, exact: int) -> int:
    """Where the sharp frame of instant k sits: 3 frames after, or before, the instant."""
    return exact + 3 if k % 2 == 0 else exact - 3


@pytest.fixture(scope="module")
def blurred(tmp_path_factory) -> tuple[Path, list[int]]:
    """100 frames, frame i shows i; every frame is box-blurred (radius 2..6)
    except one per instant, 3 frames off it. Returns the path and the sharp frames."""
    exact = exact_frames(100)
    sharp = [sharp_frame(k, f) for k, f in enumerate(exact)]
    frames = [
        synthetic.index_image(i)
        if i in sharp
        else synthetic.box_blur(synthetic.index_image(i), 2 + i % 5)
        for i in range(100)
    ]
    path = synthetic.make_from_frames(tmp_path_factory.mktemp("pick") / "blurred.mp4", frames)
    return path, sharp


@pytest.fixture(scope="module")
def blanks(tmp_path_factory) -> tuple[Path, list[int]]:
    """100 frames, frame i shows i, except black frames at the exact frames of
    the odd instants, and frames 70..80 all black (the window of instant 1.5 s... 3.0 s).
    Returns the path and the black frames."""
    exact = exact_frames(100)
    black = {f for k, f in enumerate(exact) if k % 2 == 1} | set(range(70, 81))
    frames = [
        np.zeros((synthetic.HEIGHT, synthetic.WIDTH, 3), np.uint8)
        if i in black
        else synthetic.index_image(i)
        for i in range(100)
    ]
    path = synthetic.make_from_frames(tmp_path_factory.mktemp("blank") / "blanks.mp4", frames)
    return path, sorted(black)


def shown(folder: Path, name: str) -> int:
    with Image.open(folder / name) as im:
        return synthetic.decode_index(np.asarray(im.convert("RGB")))


def header(folder: Path) -> list[str]:
    with open(folder / "frames.csv", newline="") as fh:
        return next(csv.reader(fh))


# --------------------------------------------------------------------------- sharpest


def test_sharpest_picks_the_sharp_frame_and_records_its_time(blurred, tmp_path):
    video, sharp = blurred
    result = extract_video(
        video, tmp_path, Interval(every=EVERY), fmt="png", pick=Pick("sharpest", window=WINDOW)
    )
    assert result.ok and result.written == len(sharp) == 8
    records = sorted(read_manifest(tmp_path), key=lambda r: r.requested_time)
    assert [r.frame for r in records] == sharp
    assert [r.requested_time for r in records] == pytest.approx([k * EVERY for k in range(8)])
    assert [r.time for r in records] == pytest.approx([f / FPS for f in sharp], abs=1e-6)
    assert [shown(tmp_path, r.file) for r in records] == sharp
    assert all(r.sharpness is not None and r.sharpness > 500 for r in records)
    assert header(tmp_path) == PICK_COLUMNS


def test_exact_is_unchanged_and_records_seven_columns(blurred, tmp_path):
    video, _ = blurred
    default = extract_video(video, tmp_path / "a", Interval(every=EVERY), fmt="png")
    explicit = extract_video(video, tmp_path / "b", Interval(every=EVERY), fmt="png", pick=Pick())
    assert [r.frame for r in default.records] == exact_frames(100)
    assert header(tmp_path / "a") == COLUMNS
    for name in ["frames.csv", *(r.file for r in default.records)]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert [r.file for r in explicit.records] == [r.file for r in default.records]


def test_sharpest_resumes_by_instant(blurred, tmp_path):
    video, sharp = blurred
    pick = Pick("sharpest", window=WINDOW)
    first = extract_video(video, tmp_path, Interval(every=EVERY, end=2.0), fmt="png", pick=pick)
    assert first.written == 4
    again = extract_video(video, tmp_path, Interval(every=EVERY), fmt="png", pick=pick)
    assert again.resumed == 4 and again.written == 4
    assert sorted(r.frame for r in read_manifest(tmp_path)) == sharp


def test_windows_are_disjoint_hold_the_exact_frame_and_stay_in_range():
    times = np.arange(100) / FPS
    for every, window in [(0.5, 0.4), (0.5, 2.0), (0.08, 0.5), (0.04, 1.0), (1.0, 0.01)]:
        samples = samples_for(times, np.arange(0, 4.0 - 1e-9, every))
        ranges = sample_windows(times, samples, window)
        seen: set[int] = set()
        for k, (s, r) in enumerate(zip(samples, ranges, strict=True)):
            assert s.frame in r
            assert not seen & set(r)
            seen |= set(r)
            lo = max(s.time - window / 2, (samples[k - 1].time + s.time) / 2 if k else -1)
            hi = min(
                s.time + window / 2,
                (s.time + samples[k + 1].time) / 2 if k + 1 < len(samples) else 99,
            )
            for i in r:
                if i != s.frame:  # on screen within [lo, hi): shown before hi, gone after lo
                    assert times[i] < hi and (i + 1 >= len(times) or times[i + 1] > lo)
    # A window of 0.4 s around 1.0 s: frames 20 (0.80 s) to 29 (1.16 s).
    r = sample_windows(times, samples_for(times, np.array([1.0])), 0.4)[0]
    assert (r.start, r.stop) == (20, 30)


# --------------------------------------------------------------------------- blank


def test_blank_measure():
    rng = np.random.default_rng(0)
    flat = np.full((120, 160, 3), (200, 30, 90), np.uint8)
    noisy = np.clip(flat + rng.normal(0, 1.5, flat.shape), 0, 255).astype(np.uint8)
    text = np.zeros((120, 160, 3), np.uint8)
    text[100:106, 20:140] = 255  # a line of credits on black
    credits = Image.new("RGB", (1280, 720))
    ImageDraw.Draw(credits).text(
        (500, 600), "Directed by Someone", fill="white", font=ImageFont.load_default(size=24)
    )
    assert not measure(np.asarray(credits))[1]  # one line of small text on black: not blank
    assert measure(flat)[1] and measure(noisy)[1]
    assert not measure(text)[1] and not measure(synthetic.index_image(1))[1]
    assert BLANK_STD == 4.0


def test_a_blank_frame_is_never_chosen_over_a_non_blank_one():
    # A noisy flat frame can be "sharper" (noise) than a blurred one; it still loses.
    rng = np.random.default_rng(1)
    noisy = np.clip(128 + rng.normal(0, 2.0, (120, 160, 3)), 0, 255).astype(np.uint8)
    blurred = synthetic.box_blur(synthetic.index_image(9), 6)
    (s_noise, b_noise), (s_blur, b_blur) = measure(noisy), measure(blurred)
    assert b_noise and not b_blur and s_noise > s_blur
    assert best_candidate([(0, s_noise, b_noise), (1, s_blur, b_blur)]) == 1
    assert best_candidate([(0, 5.0, True), (1, 9.0, True)]) == 1  # all blank: the sharpest


def test_skip_blank_skips_exactly_the_black_instants(blanks, tmp_path):
    video, black = blanks
    exact = exact_frames(100)
    result = extract_video(
        video, tmp_path, Interval(every=EVERY), fmt="png", pick=Pick(skip_blank=True)
    )
    expected_blank = [f for f in exact if f in black]
    assert result.ok and result.blank == len(expected_blank) == 5  # 12, 37, 62, 87 and 75
    records = read_manifest(tmp_path)
    assert sorted(r.frame for r in records if r.skipped) == expected_blank
    assert all(r.status == "blank" for r in records if r.skipped)
    written = [r for r in records if not r.skipped]
    assert sorted(r.frame for r in written) == [f for f in exact if f not in black]
    assert {p.name for p in tmp_path.glob("*.png")} == {r.file for r in written}
    assert all(shown(tmp_path, r.file) == r.frame for r in written)
    # A re-run does not retry them...
    again = extract_video(
        video, tmp_path, Interval(every=EVERY), fmt="png", pick=Pick(skip_blank=True)
    )
    assert again.resumed == len(exact) and again.written == again.blank == 0
    # ...but a run without --skip-blank writes them.
    plain = extract_video(video, tmp_path, Interval(every=EVERY), fmt="png")
    assert plain.written == 5 and plain.resumed == 3
    assert not any(r.skipped for r in read_manifest(tmp_path))


def test_sharpest_with_skip_blank_takes_a_neighbour_unless_all_are_blank(blanks, tmp_path):
    video, black = blanks
    exact = exact_frames(100)
    pick = Pick("sharpest", window=WINDOW, skip_blank=True)
    result = extract_video(video, tmp_path, Interval(every=EVERY), fmt="png", pick=pick)
    records = {round(r.requested_time, 3): r for r in read_manifest(tmp_path)}
    # Instant 3.0 s (frame 75) has frames 70..80 black: its whole window is blank.
    assert [t for t, r in records.items() if r.skipped] == [3.0]
    assert result.blank == 1 and result.written == len(exact) - 1
    for t, r in records.items():
        if not r.skipped:
            assert r.frame not in black
            assert abs(r.time - t) <= WINDOW / 2 + 1e-6
            assert shown(tmp_path, r.file) == r.frame


def test_pick_settings_are_checked():
    with pytest.raises(ValueError, match="pick must be one of exact, sharpest"):
        Pick("blurriest")
    with pytest.raises(ValueError, match="window must be a positive"):
        Pick("sharpest", window=0)


def test_probe_agrees_with_the_fixture_timeline(blurred):
    info = probe(blurred[0])
    assert info.frame_count == 100
    assert np.allclose(info.frame_times, np.arange(100) / FPS, atol=1e-6)

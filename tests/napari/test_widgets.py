"""The three dock widgets driven end to end in a real viewer (run under Xvfb)."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_video_extract._widgets import CreditsExtractionWidget, IntervalExtractionWidget
from napari_video_extract.core.manifest import read_manifest

WAIT_MS = 60_000


@pytest.fixture
def notifications():
    """Messages of the napari notifications emitted during the test."""
    from napari.utils.notifications import notification_manager

    seen: list = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def _errors(notifications) -> list[str]:
    return [n.message for n in notifications if str(n.severity).lower().endswith("error")]


def _run(qtbot, widget, action=None) -> None:
    (action or widget.start)()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _near(image: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    diff = np.abs(image[..., :3].astype(int) - np.array(rgb))
    return (diff <= tol).all(axis=-1)


def _extract_stills(qtbot, viewer, video: Path, out: Path):
    """Open ``video`` with our reader and extract a still every 0.5 s as png."""
    (video_layer,) = viewer.open(video, plugin="napari-video-extract")
    widget = IntervalExtractionWidget(viewer)
    widget.source.value = video_layer
    widget.every.value = 0.5
    widget.fmt.value = "png"
    widget.out_dir.value = out
    _run(qtbot, widget)
    return video_layer, widget, viewer.layers[-1]


# ================================================================= extraction


def test_interval_widget_from_reader_layer(make_napari_viewer, qtbot, scenes_video, tmp_path):
    viewer = make_napari_viewer()
    video_layer, widget, stills = _extract_stills(qtbot, viewer, scenes_video, tmp_path / "out")

    assert stills is not video_layer and stills.name == "scenes stills"
    assert stills.rgb and stills.data.shape == (16, 180, 320, 3)
    features = stills.metadata["features"]
    # The still for t is the frame on screen at t: frame 12 (0.48 s) for 0.5 s.
    frames = [int(np.floor(t * 25 + 1e-9)) for t in np.arange(16) * 0.5]
    assert list(features["frame"]) == frames
    np.testing.assert_allclose(features["time"], np.array(frames) / 25, atol=1e-6)
    folder = tmp_path / "out" / "scenes"  # one folder per video, as the CLI does
    records = read_manifest(folder)
    assert [folder / r.file for r in records] == [Path(f) for f in features["file"]]
    for k in (0, 5, 15):
        on_disk = np.asarray(Image.open(features["file"][k]))
        np.testing.assert_array_equal(stills.data[k], on_disk)
        # png is lossless: the still is exactly the reader's frame.
        np.testing.assert_array_equal(on_disk, np.asarray(video_layer.data[features["frame"][k]]))
    assert widget.status.value.startswith("done: 16 written")

    # The duplicate finder takes the stills layer with its per-frame features.
    from napari_video_extract._widgets.duplicates import DuplicateFinderWidget

    finder = DuplicateFinderWidget(viewer)
    assert stills in [v for _, v in finder._source_choices()]
    finder.source.value = stills
    _run(qtbot, finder)
    # The table's frame column is the video frame, not the stack index.
    assert list(finder.review.frame) == list(features["frame"])
    np.testing.assert_allclose(finder.review.time, features["time"])
    assert finder.source_layer is stills
    qtbot.waitUntil(lambda: finder.gallery is not None, timeout=WAIT_MS)


def test_credits_widget_folder_of_videos_and_resume(
    make_napari_viewer, qtbot, scenes_video, tmp_path
):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(scenes_video, videos / "a.mp4")
    shutil.copy(scenes_video, videos / "B.MOV")  # extension case does not matter
    (videos / "notes.txt").write_text("not a video")
    viewer = make_napari_viewer()
    widget = CreditsExtractionWidget(viewer)
    widget.source.value = "folder of videos"
    widget.video_folder.value = videos
    widget.head.value, widget.tail.value, widget.every.value = "1", "1.5", 0.5
    widget.out_dir.value = tmp_path / "out"
    _run(qtbot, widget)

    # Videos are processed in sorted name order ("B.MOV" < "a.mp4").
    assert [layer.name for layer in viewer.layers] == ["B stills", "a stills"]
    expected_times = [0.0, 0.48, 6.48, 7.0, 7.48]  # head [0, 1) and tail [6.5, 8)
    for layer, stem in zip(viewer.layers, ["B", "a"], strict=True):
        # Uneven stills: one slice per video frame 0..187, each still at its own frame.
        assert layer.data.stills.shape == (5, 180, 320, 3)
        assert layer.data.shape == (188, 180, 320, 3) and layer.translate[0] == 0
        np.testing.assert_allclose(layer.metadata["features"]["time"], expected_times, atol=1e-6)
        assert len(read_manifest(tmp_path / "out" / stem)) == 5
    assert "10 written" in widget.status.value

    # A second run resumes: nothing rewritten, the layers come from frames.csv.
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.jpg")}
    layers = list(viewer.layers)
    _run(qtbot, widget)
    assert "0 written, 10 already there" in widget.status.value
    assert list(viewer.layers) == layers  # the same two layers, no "... stills [1]"
    assert viewer.layers[-1].data.stills.shape == (5, 180, 320, 3)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.jpg")} == mtimes


def test_extraction_cancel_leaves_only_complete_files(
    make_napari_viewer, qtbot, long_video, tmp_path, monkeypatch
):
    import napari_video_extract.core.extract as engine

    encode = engine.encode_image

    def slow_encode(*args, **kwargs):  # a slow disk: the run lasts several seconds
        time.sleep(0.05)
        return encode(*args, **kwargs)

    monkeypatch.setattr(engine, "encode_image", slow_encode)
    viewer = make_napari_viewer()
    widget = IntervalExtractionWidget(viewer)
    widget.source.value = "video file"
    widget.video_file.value = long_video
    widget.every.value = 0.5  # 80 stills
    widget.fmt.value = "png"
    widget.out_dir.value = tmp_path / "out"
    widget.start()
    qtbot.waitUntil(
        lambda: widget.progress_bar.value >= 5, timeout=WAIT_MS
    )  # progress shows in the widget itself
    assert widget.cancel_button.enabled
    widget.cancel_button.clicked()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    folder = tmp_path / "out" / "long"
    records = read_manifest(folder)
    assert 5 <= len(records) < 60
    assert not [p for p in folder.iterdir() if "tmp" in p.name]
    images = sorted(p.name for p in folder.glob("*.png"))
    assert images == sorted(r.file for r in records)
    for rec in records:
        with Image.open(folder / rec.file) as im:
            im.load()  # decodes completely
            assert im.size == (320, 240)
    assert widget.status.value.startswith("cancelled")
    # The layer shows exactly the complete stills. Parallel runs take the
    # longest pieces first, so a cancelled run may leave gaps: the stills then
    # sit at their frames on the video's axis (more rows than stills).
    shown = viewer.layers[-1].data
    assert sorted(f.name for f in shown.files) == sorted(r.file for r in records)
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_extraction_errors_are_notifications(
    make_napari_viewer, qtbot, scenes_video, tmp_path, notifications
):
    viewer = make_napari_viewer()
    widget = IntervalExtractionWidget(viewer)
    widget.source.value = "video file"
    blocker = tmp_path / "some_file.txt"
    blocker.write_text("a file, not a folder")
    widget.video_file.value = scenes_video
    widget.out_dir.value = blocker / "out"  # unwritable even as root
    _run(qtbot, widget)
    assert any("cannot write output folder" in m for m in _errors(notifications))
    assert len(viewer.layers) == 0

    notifications.clear()
    widget.video_file.value = blocker  # not a video
    widget.out_dir.value = tmp_path / "out"
    _run(qtbot, widget)
    assert any(str(blocker) in m for m in _errors(notifications))

    notifications.clear()
    widget.video_file.value = scenes_video
    widget.start_time.value, widget.end_time.value = "5", "2"
    widget.start()  # refused before any thread starts
    assert not widget.running
    # Named as the widget names its fields, not as the CLI's flags.
    assert "start (5 s) must be before end (2 s)" in _errors(notifications)
    assert widget.status.value == "error: start (5 s) must be before end (2 s)"

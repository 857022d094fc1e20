"""The three dock widgets driven end to end in a real viewer (run under Xvfb)."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_video_extract._widgets import (
    DUPLICATE_RGB,
    KEPT_RGB,
    CreditsExtractionWidget,
    DuplicateFinderWidget,
    IntervalExtractionWidget,
)
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
    finder = DuplicateFinderWidget(viewer)
    assert stills in [v for _, v in finder._source_choices()]
    finder.source.value = stills
    _run(qtbot, finder)
    assert finder.review.files == list(features["file"])
    np.testing.assert_allclose(finder.review.time, features["time"])
    assert finder.review_layer is stills and finder.overlay_layer in viewer.layers


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
        assert layer.data.shape == (5, 180, 320, 3)
        np.testing.assert_allclose(layer.metadata["features"]["time"], expected_times, atol=1e-6)
        assert len(read_manifest(tmp_path / "out" / stem)) == 5
    assert "10 written" in widget.status.value

    # A second run resumes: nothing rewritten, the layers come from frames.csv.
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.jpg")}
    layers = list(viewer.layers)
    _run(qtbot, widget)
    assert "0 written, 10 already there" in widget.status.value
    assert list(viewer.layers) == layers  # the same two layers, no "... stills [1]"
    assert viewer.layers[-1].data.shape == (5, 180, 320, 3)
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
    assert viewer.layers[-1].data.shape[0] == len(records)
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


# ================================================================= duplicates


@pytest.fixture(scope="session")
def scenes_stills(scenes_video, tmp_path_factory) -> Path:
    """A still every 0.5 s of the scenes video (png + frames.csv), by the engine."""
    from napari_video_extract.core.extract import Interval, extract_video

    folder = tmp_path_factory.mktemp("stills") / "scenes"
    extract_video(scenes_video, folder, Interval(every=0.5), fmt="png")
    return folder


@pytest.fixture
def reviewed(make_napari_viewer, qtbot, scenes_stills):
    """A shown viewer, the duplicate finder docked, its search over a folder of stills done."""
    viewer = make_napari_viewer(show=True)
    finder = DuplicateFinderWidget(viewer)
    viewer.window.add_dock_widget(finder, name="Duplicate finder")
    viewer.window.resize(1400, 900)
    finder.source.value = "folder of images"
    finder.image_folder.value = scenes_stills
    finder.mode.value = "global"
    _run(qtbot, finder)
    stills = finder.review_layer
    assert stills.name == "scenes images" and stills.data.shape == (16, 180, 320, 3)
    # Ordered by the time column of frames.csv, not by name or listing order.
    np.testing.assert_allclose(finder.review.time, sorted(finder.review.time))
    return viewer, finder, stills


def _screenshot_at(viewer, finder, index: int) -> np.ndarray:
    finder.go_to(index)
    viewer.reset_view()
    return viewer.screenshot(canvas_only=True, flash=False)


def test_duplicate_finder_clusters_and_highlight(reviewed, qtbot):
    viewer, finder, stills = reviewed
    review = finder.review
    # 4 stills of bars at the start, 4 at the end: one cluster (global mode),
    # the first one kept; the middle scenes are other clusters.
    bars = [0, 1, 2, 3, 12, 13, 14, 15]
    assert len(set(review.cluster[bars])) == 1
    assert review.kept[0] and not review.kept[[1, 2, 3, 12, 13, 14, 15]].any()
    assert review.cluster[4] != review.cluster[0] and review.kept[4]
    overlay = finder.overlay_layer
    assert overlay is not None and len(overlay.data) == 2 * 16
    assert (
        overlay.features["tag"][13] == f"DUPLICATE c{review.cluster[13]} (d={review.distance[13]})"
    )
    assert overlay.features["tag"][0] == f"KEPT c{review.cluster[0]}"

    # The highlight is really drawn: orange border on a duplicate of the bars,
    # none on the kept bars frame (same picture), which has a green one.
    dup_shot = _screenshot_at(viewer, finder, 13)
    kept_shot = _screenshot_at(viewer, finder, 0)
    assert _near(dup_shot, DUPLICATE_RGB).sum() > 500
    assert _near(kept_shot, DUPLICATE_RGB).sum() == 0
    assert _near(kept_shot, KEPT_RGB, tol=25).sum() > 500
    overlay.visible = False
    assert _near(_screenshot_at(viewer, finder, 13), DUPLICATE_RGB).sum() == 0
    overlay.visible = True

    # Clicking a table row shows that frame.
    from qtpy.QtCore import Qt

    table = finder.table
    row = finder.row_of(14)
    table.scrollToItem(table.item(row, 1))
    rect = table.visualItemRect(table.item(row, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.dims.current_step[0] == 14
    assert table.item(row, 4).text() == "DUPLICATE"

    # Overriding a decision (tick "kept") redraws that frame in green.
    table.item(row, 4).setCheckState(Qt.CheckState.Checked)
    assert review.kept[14] and overlay.features["status"][14] == "KEPT"
    shot = _screenshot_at(viewer, finder, 14)
    assert _near(shot, DUPLICATE_RGB).sum() == 0
    assert _near(shot, KEPT_RGB, tol=25).sum() > 500

    # "show only kept frames" adds a layer of the kept frames only.
    finder.only_kept.value = True
    kept_idx = np.flatnonzero(review.kept)
    assert finder.kept_layer.data.shape[0] == len(kept_idx)
    np.testing.assert_array_equal(finder.kept_layer.data[1], stills.data[kept_idx[1]])
    assert not stills.visible and not overlay.visible
    finder.set_kept(14, False)  # the kept-only layer follows overrides
    assert finder.kept_layer.data.shape[0] == len(kept_idx) - 1
    finder.only_kept.value = False
    assert finder.kept_layer is None and stills.visible


def test_duplicate_finder_override_then_write(reviewed, qtbot, tmp_path, notifications):
    _viewer, finder, stills = reviewed
    review = finder.review
    finder.set_kept(13, True)  # a duplicate the user wants to keep
    finder.set_kept(4, False)  # and a kept frame the user drops
    kept_dir, dup_dir = tmp_path / "kept", tmp_path / "dups"
    finder.kept_dir.value, finder.dup_dir.value = kept_dir, dup_dir
    assert finder.write_button.enabled
    _run(qtbot, finder, finder.write)

    files = [Path(f) for f in stills.metadata["features"]["file"]]
    assert files == [Path(f) for f in review.files]
    kept = [files[i].name for i in np.flatnonzero(review.kept)]
    dups = [files[i].name for i in np.flatnonzero(~review.kept)]
    assert files[13].name in kept and files[4].name in dups
    assert sorted(p.name for p in kept_dir.glob("*.png")) == sorted(kept)
    assert sorted(p.name for p in dup_dir.glob("*.png")) == sorted(dups)
    # Frames that are files are copied byte for byte.
    assert (kept_dir / files[13].name).read_bytes() == files[13].read_bytes()
    rows = {r["file"]: r for r in _rows(kept_dir / "frames.csv")}
    assert set(rows) == set(kept)
    assert rows[files[13].name]["kept"] == "1" and rows[files[13].name]["decision"] == "user"
    assert rows[files[13].name]["cluster"] == str(review.cluster[13])
    assert float(rows[files[13].name]["time"]) == pytest.approx(6.48)
    drows = {r["file"]: r for r in _rows(dup_dir / "frames.csv")}
    assert drows[files[4].name]["decision"] == "user" and drows[files[4].name]["kept"] == "0"
    assert drows[files[1].name]["distance"] == str(review.distance[1])
    # The engine's manifest reader understands it (times, frames).
    assert {r.file for r in read_manifest(kept_dir)} == set(kept)

    # Writing again never overwrites: new names, old files untouched.
    before = {p.name: p.read_bytes() for p in kept_dir.glob("*.png")}
    _run(qtbot, finder, finder.write)
    for name, data in before.items():
        assert (kept_dir / name).read_bytes() == data
    assert len(list(kept_dir.glob("*.png"))) == 2 * len(kept)
    assert len(_rows(kept_dir / "frames.csv")) == 2 * len(kept)

    # An unwritable folder is a notification, nothing is written.
    blocker = tmp_path / "some_file.txt"
    blocker.write_text("x")
    finder.kept_dir.value = blocker / "kept"
    finder.dup_dir.value = tmp_path / "dups2"
    _run(qtbot, finder, finder.write)
    assert any("some_file.txt" in m for m in _errors(notifications))
    assert not (tmp_path / "dups2").exists() or not list((tmp_path / "dups2").iterdir())


def test_duplicate_finder_any_layer_and_image_folder(
    make_napari_viewer, qtbot, tmp_path, notifications
):
    rng = np.random.default_rng(0)
    a, b = rng.random((64, 80)), rng.random((64, 80))
    stack = np.stack([a, a + 0.01, b, b, a]).astype(np.float32) * 1000  # not uint8
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="floats")
    finder = DuplicateFinderWidget(viewer)
    finder.source.value = layer
    finder.keep.value = "sharpest"
    _run(qtbot, finder)
    review = finder.review
    assert review.frames.dtype == np.uint8 and review.frames.shape == (5, 64, 80)
    assert list(review.cluster) == [0, 0, 1, 1, 0]
    assert review.kept.sum() == 2
    assert finder.overlay_layer.data[0].shape == (4, 3)

    # Write encodes frames that are not files (png here), named after the layer.
    finder.kept_dir.value, finder.dup_dir.value = tmp_path / "k", tmp_path / "d"
    _run(qtbot, finder, finder.write)
    written = sorted(p.name for p in (tmp_path / "k").glob("*.png"))
    assert len(written) == 2 and all(n.startswith("floats_") for n in written)

    # A folder of images of different sizes: added as one padded layer.
    folder = tmp_path / "images"
    folder.mkdir()
    img = (np.stack([a] * 3, axis=-1) * 255).astype(np.uint8)
    Image.fromarray(img).save(folder / "img2.png")
    Image.fromarray(img).resize((160, 128)).save(folder / "img10.png")
    Image.fromarray((np.stack([b] * 3, axis=-1) * 255).astype(np.uint8)).save(folder / "img1.png")
    finder.source.value = "folder of images"
    finder.image_folder.value = folder
    finder.keep.value = "largest"
    _run(qtbot, finder)
    review = finder.review
    assert [Path(f).name for f in review.files] == ["img1.png", "img2.png", "img10.png"]
    assert finder.review_layer.data.shape == (3, 128, 160, 3)
    assert list(review.kept) == [True, False, True]  # the larger copy of a is kept

    finder.image_folder.value = tmp_path / "missing"
    finder.start()
    assert any("choose a folder of images" in m for m in _errors(notifications))

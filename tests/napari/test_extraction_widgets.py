"""Extraction widgets at napari conventions: lazy layers, re-runs, cancel, settings, docks."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_video_extract._reader import read_stills
from napari_video_extract._widgets import CreditsExtractionWidget, IntervalExtractionWidget
from napari_video_extract._widgets.settings_store import settings_path
from napari_video_extract.core.manifest import read_manifest
from napari_video_extract.core.stills import StillStack, open_stills

WAIT_MS = 60_000


@pytest.fixture
def notifications():
    from napari.utils.notifications import notification_manager

    seen: list = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def _errors(notifications) -> list[str]:
    return [n.message for n in notifications if str(n.severity).lower().endswith("error")]


def _run(qtbot, widget) -> None:
    widget.start()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)


def _interval(viewer, video: Path, out: Path, every: float) -> IntervalExtractionWidget:
    widget = IntervalExtractionWidget(viewer)
    widget.source.value = "video file"
    widget.video_file.value = video
    widget.every.value = every
    widget.fmt.value = "png"
    widget.out_dir.value = out
    return widget


def test_stills_layer_is_lazy_and_a_rerun_updates_it(
    make_napari_viewer, qtbot, scenes_video, tmp_path
):
    viewer = make_napari_viewer()
    widget = _interval(viewer, scenes_video, tmp_path / "out", every=1.0)
    _run(qtbot, widget)
    [layer] = viewer.layers
    assert isinstance(layer.data, StillStack) and layer.data.shape == (8, 180, 320, 3)
    folder = tmp_path / "out" / "scenes"
    on_disk = [np.asarray(Image.open(folder / r.file)) for r in read_manifest(folder)]
    np.testing.assert_array_equal(layer.data[3], on_disk[3])
    assert layer.scale[0] == pytest.approx(25) and layer.translate[0] == 0  # frames 0, 25...

    # Nothing new: the same layer, same data object.
    data = layer.data
    _run(qtbot, widget)
    assert list(viewer.layers) == [layer] and layer.data is data
    assert widget.status.value.startswith("done: 0 written, 8 already there")

    # Denser sampling into the same folder: the same layer shows all 16 stills.
    widget.every.value = 0.5
    _run(qtbot, widget)
    assert list(viewer.layers) == [layer] and layer.data.shape[0] == 16
    assert layer.scale[0] == pytest.approx(12.5, abs=0.1)
    assert list(layer.metadata["features"]["frame"])[:3] == [0, 12, 25]
    np.testing.assert_array_equal(
        layer.data[2], np.asarray(Image.open(layer.metadata["features"]["file"][2]))
    )


def test_cancel_during_read_back(make_napari_viewer, qtbot, scenes_video, tmp_path, monkeypatch):
    import napari_video_extract.core.stills as stills

    listing, release = [], []

    def slow_listing(path, **kwargs):  # a slow network folder
        listing.append(path)
        deadline = time.monotonic() + 20
        while not release and time.monotonic() < deadline:
            time.sleep(0.01)
        return open_stills(path, **kwargs)

    monkeypatch.setattr(stills, "open_stills", slow_listing)
    viewer = make_napari_viewer()
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(scenes_video, videos / name)
    widget = _interval(viewer, scenes_video, tmp_path / "out", every=1.0)
    widget.source.value = "folder of videos"
    widget.video_folder.value = videos
    widget.start()
    qtbot.waitUntil(lambda: bool(listing), timeout=WAIT_MS)
    # The phase reaches the GUI as a queued signal: shown while the listing hangs.
    qtbot.waitUntil(lambda: "listing stills" in widget.status.value, timeout=5_000)
    widget.cancel_button.clicked()
    release.append(True)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert widget.status.value.startswith("cancelled")
    assert not (tmp_path / "out" / "b").exists()  # the second video never started
    assert [layer.name for layer in viewer.layers] == ["a stills"]


def test_closing_the_dock_cancels_the_run(
    make_napari_viewer, qtbot, long_video, tmp_path, monkeypatch
):
    import napari_video_extract.core.extract as engine

    encode = engine.encode_image

    def slow_encode(*args, **kwargs):
        time.sleep(0.05)
        return encode(*args, **kwargs)

    monkeypatch.setattr(engine, "encode_image", slow_encode)
    viewer = make_napari_viewer()
    widget = _interval(viewer, long_video, tmp_path / "out", every=0.5)
    dock = viewer.window.add_dock_widget(widget, name="Interval extraction")
    widget.start()
    qtbot.waitUntil(lambda: widget.progress_bar.value >= 3, timeout=WAIT_MS)
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert 3 <= len(read_manifest(tmp_path / "out" / "long")) < 60


def test_settings_persist_across_widget_instances(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    first = IntervalExtractionWidget(viewer)
    first.every.value = 2.5
    first.end_time.value = "00:01:00"
    first.fmt.value = "webp"
    first.out_dir.value = tmp_path / "stills"
    first.source.value = "folder of videos"
    assert settings_path("interval_extraction").is_file()
    again = IntervalExtractionWidget(viewer)
    assert again.every.value == 2.5 and again.end_time.value == "00:01:00"
    assert again.fmt.value == "webp" and Path(again.out_dir.value) == tmp_path / "stills"
    assert again.source.value == "folder of videos"
    # Each widget keeps its own settings.
    assert CreditsExtractionWidget(viewer).every.value == 1.0
    # An unreadable file gives the defaults.
    settings_path("interval_extraction").write_text("{ torn")
    assert IntervalExtractionWidget(viewer).every.value == 1.0


def test_batch_goes_on_past_a_failing_video(
    make_napari_viewer, qtbot, scenes_video, tmp_path, notifications
):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        shutil.copy(scenes_video, videos / name)
    (videos / "b.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    (out / "c").mkdir(parents=True)
    (out / "c" / "frames.csv").mkdir()  # a folder where the manifest goes: an OSError
    viewer = make_napari_viewer()
    widget = _interval(viewer, scenes_video, out, every=2.0)
    widget.source.value = "folder of videos"
    widget.video_folder.value = videos
    _run(qtbot, widget)
    errors = _errors(notifications)
    assert len(errors) == 2 and len(widget.failures) == 2
    assert str(videos / "b.mp4") in errors[0] and str(videos / "c.mp4") in errors[1]
    assert all("\n" not in e and len(e.split(": ", 1)[1]) > 3 for e in errors)  # with a reason
    assert [layer.name for layer in viewer.layers] == ["a stills"]
    assert widget.status.value.startswith("done: 4 written, 0 already there, 2 failed")


def test_two_docks_fit_a_1366x768_screen(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 768)
    docks = [
        viewer.window.add_dock_widget(cls(viewer), name=cls.__name__, area="right")
        for cls in (IntervalExtractionWidget, CreditsExtractionWidget)
    ]
    qtbot.wait(50)
    for dock in docks:
        assert dock.minimumSizeHint().height() < 768 // 2 - 60, dock.minimumSizeHint()
    # Both docks get room on screen, and each scrolls to its Extract button.
    assert sum(dock.height() for dock in docks) <= 768


def test_stills_show_their_time_and_land_the_video_on_their_frame(
    make_napari_viewer, qtbot, scenes_video, tmp_path
):
    viewer = make_napari_viewer()
    (video_layer,) = viewer.open(scenes_video, plugin="napari-video-extract")
    widget = IntervalExtractionWidget(viewer)
    widget.source.value = video_layer
    widget.every.value = 0.5
    widget.out_dir.value = tmp_path / "out"
    _run(qtbot, widget)
    stills = viewer.layers[-1]
    assert viewer.dims.nsteps[0] == 200  # the video's slider, not the stills' 16 positions
    viewer.layers.selection.active = stills
    overlay = viewer.canvas.overlays.text
    viewer.dims.set_point(0, 0)
    assert overlay.visible and "still 1/16 · 00:00.000 · frame 0" in overlay.text
    viewer.dims.set_point(0, 3)  # a step forward lands on the next still's frame
    assert viewer.dims.point[0] == 12
    assert "still 2/16 · 00:00.480 · frame 12" in overlay.text
    viewer.dims.set_point(0, 11)  # and back
    assert viewer.dims.point[0] == 0
    viewer.dims.set_point(0, 190)
    assert viewer.dims.point[0] == 187 and "00:07.480" in overlay.text
    # With the video selected the slider moves freely; the overlay still tells the still.
    viewer.layers.selection.active = video_layer
    viewer.dims.set_point(0, 101)
    assert viewer.dims.point[0] == 101 and "frame 100" in overlay.text


def test_lazy_1200_still_layer_scrubbed_with_bounded_memory(make_napari_viewer, tmp_path):
    """1,200 stills of 640x360 (830 MB decoded) shown through a 32 MB cache."""
    folder = tmp_path / "stills"
    folder.mkdir()
    originals = []
    for k in range(12):  # 12 distinct pictures, each copied 100 times (writing is slow)
        pixels = np.full((360, 640, 3), (20 * k, 255 - 20 * k, 7 * k), dtype=np.uint8)
        originals.append(folder / f"s{k:04d}.png")
        Image.fromarray(pixels).save(originals[-1], compress_level=1)
    for k in range(12, 1200):
        shutil.copyfile(originals[k % 12], folder / f"s{k:04d}.png")
    viewer = make_napari_viewer()
    [(stack, kwargs, _)] = read_stills(folder, stack=open_stills(folder, cache_bytes=32 << 20))
    layer = viewer.add_image(stack, **kwargs)
    assert viewer.dims.nsteps[0] == 1200
    before = peak = _rss_mb()
    # End to end, every 5th still (napari spends ~40 ms per slice here: stepping
    # through all 1,200 would only make the test slower, not the bound stricter).
    for k in range(0, 1200, 5):
        viewer.dims.set_point(0, k)
        if k % 100 == 0:
            peak = max(peak, _rss_mb())
            j = k % 12
            np.testing.assert_array_equal(stack[k][0, 0], (20 * j, 255 - 20 * j, 7 * j))
    peak = max(peak, _rss_mb())
    assert stack.cached_bytes <= 32 << 20
    assert layer.data is stack
    # Keeping the 240 stills shown would add 200 MB, all 1,200: 830 MB.
    assert peak - before < 120, (before, peak)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_head_and_tail_stills_sit_at_their_own_frames(
    make_napari_viewer, qtbot, scenes_video, tmp_path
):
    from napari_video_extract.core.frame_axis import FrameAxisStills

    viewer = make_napari_viewer()
    (video_layer,) = viewer.open(scenes_video, plugin="napari-video-extract")
    widget = CreditsExtractionWidget(viewer)
    widget.source.value = video_layer
    widget.head.value, widget.tail.value, widget.every.value = "1", "1", 0.5
    widget.fmt.value = "png"
    widget.out_dir.value = tmp_path / "out"
    _run(qtbot, widget)
    stills = viewer.layers[-1]
    records = read_manifest(tmp_path / "out" / "scenes")
    frames = [r.frame for r in records]
    assert len(frames) >= 4 and len(set(np.diff(frames))) > 1  # uneven: head, gap, tail
    assert isinstance(stills.data, FrameAxisStills) and len(stills.data.stills) == len(frames)
    assert viewer.dims.nsteps[0] == 200  # still the video's slider
    for record in records:
        # At the still's video frame the layer shows that still, pixel for pixel.
        index = round(stills.world_to_data((record.frame, 0, 0))[0])
        on_disk = np.asarray(Image.open(tmp_path / "out" / "scenes" / record.file))
        np.testing.assert_array_equal(stills.data[index], on_disk)
        # ... and the video layer, at the same slider position, that still's frame.
        video_frame = np.asarray(video_layer.data[record.frame], dtype=float)
        assert np.abs(video_frame - on_disk).mean() < 2.0, record
    # Stepping with the stills layer selected lands on the stills' exact frames,
    # across the gap between head and tail.
    viewer.layers.selection.active = stills
    overlay = viewer.canvas.overlays.text
    head_last = max(f for f in frames if f < 100)
    tail_first = min(f for f in frames if f > 100)
    viewer.dims.set_point(0, head_last)
    viewer.dims.set_point(0, head_last + 1)
    assert viewer.dims.point[0] == tail_first
    k = frames.index(tail_first)
    assert f"still {k + 1}/{len(frames)}" in overlay.text and f"frame {tail_first}" in overlay.text
    viewer.dims.set_point(0, tail_first - 1)
    assert viewer.dims.point[0] == head_last


def test_source_choices_follow_the_layer_list(make_napari_viewer, scenes_video):
    viewer = make_napari_viewer()
    undocked = IntervalExtractionWidget(viewer)
    docked = CreditsExtractionWidget(viewer)
    viewer.window.add_dock_widget(docked, name="Credits extraction")

    def layers(widget) -> list:
        return [c for c in widget.source.choices if not isinstance(c, str)]

    def texts(widget) -> list[str]:
        combo = widget.source.native
        return sorted(combo.itemText(i) for i in range(combo.count()))

    (video_layer,) = viewer.open(scenes_video, plugin="napari-video-extract")
    viewer.add_image(np.zeros((4, 8, 8), np.uint8), name="not a video")  # no file behind it
    for widget in (undocked, docked):
        assert layers(widget) == [video_layer]
        assert texts(widget) == ["folder of videos", "layer: scenes.mp4", "video file"]
    video_layer.name = "renamed clip"
    for widget in (undocked, docked):
        assert texts(widget) == ["folder of videos", "layer: renamed clip", "video file"]
    viewer.layers.remove(video_layer)
    for widget in (undocked, docked):
        assert layers(widget) == [] and texts(widget) == ["folder of videos", "video file"]
        # The choice falls back to a file or folder, and its path field is shown.
        field = {"video file": widget.video_file, "folder of videos": widget.video_folder}
        assert not field[widget.source.value].native.isHidden()


def test_status_tells_the_last_outcome_after_a_crash(
    make_napari_viewer, qtbot, scenes_video, tmp_path, monkeypatch, notifications
):
    import napari_video_extract._widgets.extraction_jobs as jobs

    def broken(*_args, **_kwargs):
        raise RuntimeError("decoder fell over")

    viewer = make_napari_viewer()
    widget = _interval(viewer, scenes_video, tmp_path / "out", every=2.0)
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "extract_video", broken)  # not one video's error: a bug
        _run(qtbot, widget)
    assert widget.status.value.startswith("error: interval extraction failed")
    assert "decoder fell over" in widget.status.value and _errors(notifications)
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    _run(qtbot, widget)  # the next run's outcome replaces it
    assert widget.status.value.startswith("done: 4 written, 0 already there")
    assert len(read_manifest(tmp_path / "out" / "scenes")) == 4


def test_cancel_while_probing_writes_nothing(make_napari_viewer, qtbot, scenes_video, tmp_path):
    viewer = make_napari_viewer()
    widget = _interval(viewer, scenes_video, tmp_path / "out", every=0.5)
    widget.start()
    assert widget.running and widget.status.value.startswith("extracting 1 video")
    widget.cancel_button.clicked()  # before the first still: probing or not yet started
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert widget.status.value.startswith("cancelled: 0 written")
    assert not list((tmp_path / "out").rglob("*.png")) and len(viewer.layers) == 0
    assert widget.run_button.enabled and not widget.cancel_button.enabled

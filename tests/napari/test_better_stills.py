"""Issue 13 in napari: pick/window/skip-blank fields and "Save contact sheet"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from napari_video_extract._widgets import ContactSheetWidget, IntervalExtractionWidget
from napari_video_extract.core.contact_sheet import is_our_sheet
from napari_video_extract.core.manifest import read_manifest

WAIT_MS = 60_000


def _extract(qtbot, viewer, video: Path, out: Path, **fields) -> IntervalExtractionWidget:
    widget = IntervalExtractionWidget(viewer)
    widget.source.value = "video file"
    widget.video_file.value = video
    widget.fmt.value = "png"
    widget.out_dir.value = out
    for name, value in fields.items():
        getattr(widget, name).value = value
    widget.start()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    return widget


def test_pick_fields_reach_the_engine(make_napari_viewer, qtbot, scenes_video, tmp_path):
    viewer = make_napari_viewer()
    widget = IntervalExtractionWidget(viewer)
    # Shown only with sharpest (isHidden: the dock itself is not on screen here).
    assert widget.pick.value == "exact" and widget.window.native.isHidden()
    widget.pick.value = "sharpest"
    assert not widget.window.native.isHidden()
    widget = _extract(
        qtbot, viewer, scenes_video, tmp_path, every=2.0, pick="sharpest", window=0.4
    )
    assert widget.status.value.startswith("done: 4 written"), widget.status.value
    records = read_manifest(tmp_path / "scenes")
    assert len(records) == 4 and all(r.sharpness is not None for r in records)
    assert all(abs(r.time - r.requested_time) <= 0.2 + 1e-6 for r in records)
    # The choice persists like the other settings.
    again = IntervalExtractionWidget(viewer)
    assert again.pick.value == "sharpest" and again.window.value == 0.4


def test_save_contact_sheet_from_a_stills_layer(make_napari_viewer, qtbot, scenes_video, tmp_path):
    viewer = make_napari_viewer()
    _extract(qtbot, viewer, scenes_video, tmp_path / "out", every=2.0)
    [layer] = viewer.layers
    sheet_widget = ContactSheetWidget(viewer)
    assert sheet_widget.stills_layer.value is layer
    sheet_widget.columns.value = 2
    sheet_widget.fmt.value = "png"
    sheet_widget.save()
    qtbot.waitUntil(lambda: not sheet_widget.running, timeout=WAIT_MS)
    sheet = sheet_widget.sheet
    assert sheet is not None, sheet_widget.status.value
    assert sheet.path == tmp_path / "out" / "scenes_contact_sheet.png" and is_our_sheet(sheet.path)
    assert sheet.header[0] == "scenes.mp4" and "h264" in sheet.header[1]  # probed
    # Each cell shows its still: compare with the still reduced the same way.
    with Image.open(sheet.path) as im:
        pixels = np.asarray(im.convert("RGB")).astype(np.int16)
    for path, (left, top, right, bottom) in zip(sheet.files, sheet.cells, strict=True):
        with Image.open(path) as still:
            expected = np.asarray(
                still.convert("RGB").resize((right - left, bottom - top), Image.Resampling.BICUBIC)
            ).astype(np.int16)
        assert np.abs(pixels[top:bottom, left:right] - expected).mean() < 3
    assert "saved" in sheet_widget.status.value


def test_contact_sheet_cancel_and_close(
    make_napari_viewer, qtbot, scenes_video, tmp_path, monkeypatch
):
    import time

    import napari_video_extract.core.contact_sheet as sheets

    thumbnail = sheets._thumbnail

    def slow_thumbnail(*args, **kwargs):  # a slow disk: time to cancel between cells
        time.sleep(0.3)
        return thumbnail(*args, **kwargs)

    monkeypatch.setattr(sheets, "_thumbnail", slow_thumbnail)
    viewer = make_napari_viewer()
    _extract(qtbot, viewer, scenes_video, tmp_path / "out", every=0.5)  # 16 stills
    sheet_widget = ContactSheetWidget(viewer)
    dock = viewer.window.add_dock_widget(sheet_widget, name="Contact sheet")
    sheet_widget.save()
    qtbot.waitUntil(lambda: sheet_widget.progress_bar.value >= 1, timeout=WAIT_MS)
    sheet_widget.cancel_button.clicked()
    qtbot.waitUntil(lambda: not sheet_widget.running, timeout=WAIT_MS)
    assert sheet_widget.status.value == "cancelled: no sheet written"
    assert sheet_widget.sheet is None and sheet_widget.save_button.enabled
    assert not list(tmp_path.rglob("*contact_sheet*"))
    # Closing the dock cancels a running sheet too.
    sheet_widget.save()
    qtbot.waitUntil(lambda: sheet_widget.progress_bar.value >= 1, timeout=WAIT_MS)
    viewer.window.remove_dock_widget(dock)
    qtbot.waitUntil(lambda: not sheet_widget.running, timeout=WAIT_MS)
    assert sheet_widget.sheet is None and not list(tmp_path.rglob("*contact_sheet*"))

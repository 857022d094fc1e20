"""The reader in a real napari viewer (needs a display: run under xvfb-run).

What is on screen is checked on pixels: the synthetic video's frames show
their own index as black and white blocks, so decoding the blocks from a
screenshot tells which frame napari really displays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract._reader import VideoArray

PLUGIN = "napari-video-extract"


def displayed_index(viewer, shape: tuple[int, int]) -> int:
    """Decode the frame index from a canvas screenshot.

    The canvas shows data pixel ``(y, x)`` at screen ``(center + (p - c) *
    zoom)``; resample the screenshot on the data grid and decode the blocks.
    """
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3]
    cy, cx = viewer.scene.camera.center[-2:]
    zoom = viewer.scene.camera.zoom
    ys = (np.arange(shape[0]) - cy) * zoom + shot.shape[0] / 2
    xs = (np.arange(shape[1]) - cx) * zoom + shot.shape[1] / 2
    rows = np.clip(ys.astype(int), 0, shot.shape[0] - 1)
    cols = np.clip(xs.astype(int), 0, shot.shape[1] - 1)
    return synthetic.decode_index(shot[np.ix_(rows, cols)])


def test_open_video_in_viewer(make_napari_viewer, indexed_video: Path, qtbot) -> None:
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(indexed_video, plugin=PLUGIN)
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == indexed_video.name
    assert layer.rgb
    assert isinstance(layer.data, VideoArray)
    assert layer.data.shape == (250, 120, 160, 3)
    assert layer.data.dtype == np.uint8
    assert layer.ndim == 3
    assert layer.metadata["path"] == str(indexed_video)
    assert layer.metadata["fps"] == pytest.approx(25)
    assert len(layer.metadata["frame_times"]) == 250
    assert layer.axis_labels[0] == "frame"
    assert viewer.dims.axis_labels[0] == "frame"
    assert viewer.dims.nsteps[0] == 250
    viewer.reset_view()

    reader = layer.data.reader
    for i in (0, 137, 249, 12):
        viewer.dims.set_point(0, i)
        qtbot.wait(10)
        assert viewer.dims.current_step[0] == i
        assert displayed_index(viewer, (120, 160)) == i
        # export_figure renders the data extent only, whatever the canvas size.
        assert synthetic.decode_index(viewer.export_figure()[..., :3]) == i

    # Playing forward frame by frame streams from the running decoder.
    started = reader.stats.streams_started
    for i in range(13, 40):
        viewer.dims.set_point(0, i)
    assert displayed_index(viewer, (120, 160)) == 39
    assert reader.stats.streams_started == started


def test_open_sample_video(make_napari_viewer) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "sample_video")
    assert len(viewer.layers) == 1
    layer = viewer.layers[0]
    assert isinstance(layer.data, VideoArray)
    assert layer.data.shape == (600, 360, 640, 3)
    assert layer.rgb
    assert viewer.dims.nsteps[0] == 600
    viewer.dims.set_point(0, 110)  # the Mandelbrot scene: neither black nor grey
    np.testing.assert_array_equal(layer.data[110], layer.data.reader.read(110))
    assert layer.data[110].std() > 20


def test_napari_does_not_claim_other_files_for_us(make_napari_viewer, tmp_path: Path) -> None:
    from napari_video_extract._reader import get_reader

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert get_reader(str(text)) is None
    viewer = make_napari_viewer(show=True)
    with pytest.raises(ValueError, match=PLUGIN):
        viewer.open(text, plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_open_stills_folder_next_to_its_video(
    make_napari_viewer, indexed_video: Path, tmp_path: Path, qtbot
) -> None:
    from napari_video_extract.core.extract import Interval, extract_video
    from napari_video_extract.core.stills import StillStack

    folder = tmp_path / "stills"
    assert extract_video(indexed_video, folder, Interval(every=0.4), fmt="png").written == 25
    viewer = make_napari_viewer(show=True)
    viewer.open(indexed_video, plugin=PLUGIN)
    [stills] = viewer.open(folder, plugin=PLUGIN)
    assert isinstance(stills.data, StillStack) and stills.data.shape[0] == 25
    assert list(stills.metadata["features"]["frame"]) == list(range(0, 250, 10))
    # One slider, the video's: the stills span its 250 frames, not its first 25;
    # at each frame napari shows the nearest still.
    assert viewer.dims.nsteps[0] == 250
    viewer.layers[0].visible = False
    viewer.reset_view()
    for frame, still_frame in ((0, 0), (6, 10), (120, 120), (137, 140), (244, 240)):
        viewer.dims.set_point(0, frame)
        qtbot.wait(10)
        assert displayed_index(viewer, (120, 160)) == still_frame, frame
    # Only the stills shown were decoded.
    assert stills.data.cached_bytes <= 8 * 120 * 160 * 3
    [only] = viewer.open(folder / "frames.csv", plugin=PLUGIN)
    assert only.data.shape == stills.data.shape

"""The napari reader hook and its lazy array, without a viewer (no display)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract._reader import VideoArray, get_reader, read_video
from napari_video_extract._sample_data import sample_video


@pytest.fixture
def video_array(indexed_video: Path) -> VideoArray:
    [(data, _, _)] = get_reader(str(indexed_video))(str(indexed_video))
    yield data
    data.reader.close()


def test_reader_layer_data(indexed_video: Path) -> None:
    reader = get_reader(str(indexed_video))
    assert callable(reader)
    [(data, kwargs, layer_type)] = reader(str(indexed_video))
    try:
        assert layer_type == "image"
        assert isinstance(data, VideoArray)
        assert data.shape == (250, 120, 160, 3)
        assert data.ndim == len(data.shape) == 4
        assert data.dtype == np.uint8
        assert len(data) == 250
        assert kwargs["name"] == indexed_video.name
        assert kwargs["rgb"] is True
        assert kwargs["axis_labels"] == ("frame", "y", "x")
        meta = kwargs["metadata"]
        assert meta["path"] == str(indexed_video)
        assert meta["fps"] == pytest.approx(25)
        np.testing.assert_allclose(meta["frame_times"], np.arange(250) / 25, atol=1e-3)
        assert meta["video"]["frame_count"] == 250
        json.dumps(meta)  # plain data, saveable with the layer
    finally:
        data.reader.close()


def test_upper_case_extension(indexed_video: Path, tmp_path: Path) -> None:
    upper = tmp_path / "CLIP.MP4"
    upper.symlink_to(indexed_video)
    reader = get_reader(upper)
    assert reader is not None
    [(data, kwargs, _)] = reader(upper)
    assert kwargs["name"] == "CLIP.MP4"
    assert synthetic.decode_index(data[3]) == 3
    data.reader.close()


def test_get_reader_declines_what_it_cannot_read(tmp_path: Path, indexed_video: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    audio = synthetic.make_audio_only(tmp_path / "tone.mp4")
    for path in (
        text,
        str(text),
        fake,
        empty,
        folder,
        tmp_path,
        audio,
        tmp_path / "missing.mp4",
        [str(indexed_video)],
        None,
        42,
    ):
        assert get_reader(path) is None, path


def test_int_indexing_gives_that_frame(video_array: VideoArray) -> None:
    for i in (0, 1, 100, 249, -1, np.int64(30)):
        frame = video_array[i]
        assert frame.shape == (120, 160, 3)
        assert synthetic.decode_index(frame) == int(i) % 250


def test_tuple_and_slice_indexing(video_array: VideoArray) -> None:
    # What napari's slicing asks for: a tuple of an int and full slices.
    frame = video_array[(42, slice(None), slice(None))]
    assert synthetic.decode_index(frame) == 42
    crop = video_array[42, 10:50, 20:30, 0]
    assert crop.shape == (40, 10)
    np.testing.assert_array_equal(crop, frame[10:50, 20:30, 0])
    assert synthetic.decode_index(video_array[42, ...]) == 42

    stack = video_array[10:16]
    assert stack.shape == (6, 120, 160, 3)
    assert [synthetic.decode_index(f) for f in stack] == list(range(10, 16))
    stack = video_array[20:5:-5]
    assert [synthetic.decode_index(f) for f in stack] == [20, 15, 10]
    stack = video_array[[7, 3, 200], :, :80]
    assert stack.shape == (3, 120, 80, 3)
    assert [synthetic.decode_index(f) for f in video_array[[7, 3, 200]]] == [7, 3, 200]
    with pytest.raises(IndexError):
        video_array[250]


def test_asarray_decodes_everything(indexed_video_factory) -> None:
    path = indexed_video_factory(frames=30, gop=10)
    [(data, _, _)] = read_video(path)
    full = np.asarray(data)
    assert full.shape == (30, 120, 160, 3)
    assert [synthetic.decode_index(f) for f in full] == list(range(30))
    np.testing.assert_array_equal(full, np.stack(synthetic.decode_all(path)))
    data.reader.close()


def test_sample_data_goes_through_the_reader() -> None:
    [(data, kwargs, layer_type)] = sample_video()
    assert layer_type == "image"
    assert isinstance(data, VideoArray)
    assert data.shape == (600, 360, 640, 3)
    assert kwargs["name"] == "sample_scenes.mp4"
    assert kwargs["rgb"] is True
    assert len(kwargs["metadata"]["frame_times"]) == 600
    data.reader.close()


def test_npe2_manifest_validates() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-video-extract"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in (proc.stdout + proc.stderr).lower()


def test_manifest_contributions() -> None:
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-video-extract")
    contrib = manifest.contributions
    [reader] = contrib.readers
    assert reader.command == "napari-video-extract.get_reader"
    assert all(p == p.lower() for p in reader.filename_patterns)
    assert {"*.mp4", "*.mkv", "*.webm", "*.avi", "*.mov", "*.ts"} <= set(reader.filename_patterns)
    assert [s.key for s in contrib.sample_data] == ["sample_video"]
    widgets = {w.command for w in contrib.widgets}
    in_menus = {item.command for items in contrib.menus.values() for item in items}
    assert (
        widgets
        == in_menus
        == {
            "napari-video-extract.interval_widget",
            "napari-video-extract.credits_widget",
            "napari-video-extract.dedup_widget",
            "napari-video-extract.contact_sheet_widget",
        }
    )


def test_reader_module_imports_no_qt_or_napari() -> None:
    code = (
        "import sys, json\n"
        "import napari_video_extract, napari_video_extract._reader, "
        "napari_video_extract._sample_data\n"
        "heavy = ['qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'torch', "
        "'magicgui', 'vispy', 'cv2', 'imageio_ffmpeg', 'napari_video_extract.core.decode']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(proc.stdout) == []

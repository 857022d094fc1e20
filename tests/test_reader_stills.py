"""The reader opens a folder of stills or its frames.csv as one lazy layer (no display)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import synthetic
from napari_video_extract._reader import get_reader
from napari_video_extract.core.extract import HeadTail, Interval, extract_video
from napari_video_extract.core.stills import StillStack, frame_axis_placement


@pytest.fixture(scope="module")
def stills_folder(indexed_video_factory, tmp_path_factory) -> Path:
    """Stills every 0.4 s (10 frames) of a 250-frame indexed video, as PNG."""
    out = tmp_path_factory.mktemp("stills") / "clip"
    result = extract_video(indexed_video_factory(), out, Interval(every=0.4), fmt="png")
    assert result.ok and result.written == 25
    return out


def test_folder_is_one_lazy_layer_in_time_order(stills_folder: Path) -> None:
    reader = get_reader(str(stills_folder))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(stills_folder))
    assert kind == "image" and isinstance(data, StillStack)
    assert data.shape == (25, synthetic.HEIGHT, synthetic.WIDTH, 3) and data.ndim == 4
    # At open only the two stills napari shows first (the first and the
    # slider's centre) are decoded, in the background; nothing else.
    one_still = synthetic.HEIGHT * synthetic.WIDTH * 3
    deadline = time.monotonic() + 60
    while data.cached_bytes < 2 * one_still and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert data.cached_bytes == 2 * one_still
    feats = kwargs["metadata"]["features"]
    assert list(feats.columns) == ["time", "frame", "file", "video"]
    assert list(feats["frame"]) == list(range(0, 250, 10))
    np.testing.assert_allclose(feats["time"], np.arange(25) * 0.4, atol=1e-6)
    for i in (0, 7, 24):
        assert synthetic.decode_index(data[i]) == feats["frame"][i]
        assert Path(feats["file"][i]).parent == stills_folder
    # Drawn at the frames' positions on a video's axis: still i at frame 10 i.
    assert kwargs["translate"][0] == 0 and kwargs["scale"][0] == pytest.approx(10)
    assert kwargs["metadata"]["frame_axis"]["exact"] is True
    assert kwargs["rgb"] and kwargs["contrast_limits"] == [0, 255]
    assert kwargs["name"] == "clip"


def test_frames_csv_opens_only_what_it_lists(stills_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(stills_folder, folder)
    extra = folder / "zz_extra.png"
    shutil.copy(next(folder.glob("*.png")), extra)
    [(whole, _, _)] = get_reader(str(folder))(str(folder))
    assert len(whole) == 26 and whole.files[-1] == extra  # unlisted images come last
    manifest = folder / "frames.csv"
    [(listed, kwargs, _)] = get_reader(str(manifest))(str(manifest))
    assert len(listed) == 25 and extra not in listed.files
    assert kwargs["metadata"]["folder"] == str(folder)


def test_plain_folder_in_natural_order(tmp_path: Path) -> None:
    from PIL import Image

    for k in (10, 2, 1):
        Image.fromarray(synthetic.index_image(k)).save(tmp_path / f"img{k}.png")
    [(data, kwargs, _)] = get_reader(tmp_path)(tmp_path)
    assert [synthetic.decode_index(data[i]) for i in range(3)] == [1, 2, 10]
    assert kwargs["translate"][0] == 0 and kwargs["scale"][0] == 1  # no frames known
    features = kwargs["metadata"]["features"]
    assert np.isnan(features["time"]).all() and (features["frame"] == -1).all()
    assert features.row(0) == {"time": None, "frame": None, "file": str(tmp_path / "img1.png"),
                               "video": ""}  # fmt: skip
    table = features.to_pandas()  # for notebooks
    assert table["time"].isna().all() and table["frame"].isna().all() and len(table) == 3


def test_declines_folders_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    (tmp_path / "sub").mkdir()
    assert get_reader(tmp_path) is None
    assert get_reader(tmp_path / "frames.csv") is None  # absent
    (tmp_path / "frames.csv").write_text("file,video,time,frame\n")
    assert get_reader(tmp_path / "frames.csv") is None  # lists nothing


def test_frame_axis_placement() -> None:
    assert frame_axis_placement([12, 25, 37, 50]) == (12.0, pytest.approx(38 / 3), True)
    # Head and tail stills: spread over their span, not exact.
    t, s, exact = frame_axis_placement([0, 25, 50, 9000, 9025])
    assert (t, s, exact) == (0.0, 2256.25, False)
    assert frame_axis_placement([None, 3]) == (0.0, 1.0, False)
    assert frame_axis_placement([5, 5]) == (0.0, 1.0, False)
    assert frame_axis_placement([]) == (0.0, 1.0, False)


def test_head_tail_stills_span_the_video(indexed_video_factory, tmp_path: Path) -> None:
    video = indexed_video_factory()
    result = extract_video(video, tmp_path, HeadTail(head=1, tail=1, every=0.5), fmt="png")
    assert result.ok
    [(data, kwargs, _)] = get_reader(tmp_path)(tmp_path)
    frames = list(kwargs["metadata"]["features"]["frame"])
    assert frames[0] == 0 and frames[-1] >= 225
    assert kwargs["scale"][0] * (len(data) - 1) == pytest.approx(frames[-1] - frames[0])


def test_opening_stills_imports_no_pandas_and_no_hashing_engine(stills_folder: Path) -> None:
    # pandas took 0.6 s of the 1 s budget for opening a folder in a fresh viewer,
    # the hashing engine (imagehash, clustering) ~0.1 s: listing needs neither.
    heavy = ("pandas", "qtpy", "napari", "imagehash", "scipy")
    engine = ("hashing", "clustering", "dedup", "matching")
    code = (
        "import sys; from napari_video_extract._reader import get_reader; "
        f"[(d, k, _)] = get_reader({str(stills_folder)!r})({str(stills_folder)!r}); "
        "assert len(k['metadata']['features']) == len(d) == 25; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} "
        f"or m.split('.')[-1] in {engine!r}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

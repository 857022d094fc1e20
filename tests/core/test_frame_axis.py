"""FrameAxisStills: uneven stills placed exactly on their video's frame axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_video_extract._reader import read_stills
from napari_video_extract.core.frame_axis import FrameAxisStills
from napari_video_extract.core.manifest import FrameRecord, _render
from napari_video_extract.core.stills import StillStack, open_stills

W, H = 24, 16
#: Head and tail: frames 0, 12, 25 then 175, 187 (uneven: no scale/translate fits).
FRAMES = (0, 12, 25, 175, 187)


def _stills(folder: Path) -> list[np.ndarray]:
    pixels, records = [], []
    for k, frame in enumerate(FRAMES):
        image = np.full((H, W, 3), (40 * k + 10, 200 - 30 * k, 7 * k), dtype=np.uint8)
        image[0, 0] = (255, 255, 255)
        Image.fromarray(image).save(folder / f"s{k}.png")
        pixels.append(image)
        records.append(FrameRecord(f"s{k}.png", "clip.mp4", frame / 25, frame, frame / 25, W, H))
    (folder / "frames.csv").write_bytes(_render(records))
    return pixels


def test_each_still_sits_at_its_frame_and_the_nearest_fills_between(tmp_path: Path) -> None:
    pixels = _stills(tmp_path)
    view = FrameAxisStills(open_stills(tmp_path), FRAMES)
    assert view.shape == (188, H, W, 3) and view.ndim == 4 and view.dtype == np.uint8
    for k, frame in enumerate(FRAMES):
        np.testing.assert_array_equal(view[frame], pixels[k])
    # Between two stills, the nearer one; at a tie (frame 6 of 0..12), the earlier.
    assert list(view.still_at(np.array([5, 6, 7, 18, 19, 100, 101, 186]))) == [
        0, 0, 1, 1, 2, 2, 3, 4,
    ]  # fmt: skip
    np.testing.assert_array_equal(view[100], pixels[2])
    np.testing.assert_array_equal(view[101], pixels[3])
    np.testing.assert_array_equal(view[-1], pixels[4])
    np.testing.assert_array_equal(view[[187, 0], 0, 0], [[255, 255, 255]] * 2)
    np.testing.assert_array_equal(view[170:180:5, 3], np.stack([pixels[3][3]] * 2))
    with pytest.raises(IndexError):
        view[188]
    # Nothing is decoded twice: 188 slices, 5 images in the cache.
    assert view.cached_bytes == 5 * H * W * 3


def test_bad_frames_are_refused(tmp_path: Path) -> None:
    _stills(tmp_path)
    stack = open_stills(tmp_path)
    with pytest.raises(ValueError, match="increasing"):
        FrameAxisStills(stack, (0, 12, 12, 175, 187))
    with pytest.raises(ValueError, match="4 frames for 5 stills"):
        FrameAxisStills(stack, FRAMES[:4])


def test_the_reader_places_uneven_stills_exactly_and_even_ones_by_transform(
    tmp_path: Path,
) -> None:
    pixels = _stills(tmp_path)
    [(data, kwargs, kind)] = read_stills(tmp_path)
    assert kind == "image" and isinstance(data, FrameAxisStills)
    assert isinstance(data.stills, StillStack) and len(data.stills) == 5
    assert kwargs["translate"][0] == 0 and kwargs["scale"][0] == 1
    assert kwargs["metadata"]["frame_axis"]["exact"] is True
    assert list(kwargs["metadata"]["features"]["frame"]) == list(FRAMES)
    # World position = video frame: still 3 is what the layer shows at frame 175.
    np.testing.assert_array_equal(data[175 - int(kwargs["translate"][0])], pixels[3])

    # Only the evenly spaced head (frames.csv of its three stills): a plain stack.
    even = tmp_path / "even"
    even.mkdir()
    records = []
    for k, frame in enumerate(FRAMES[:3]):
        (even / f"s{k}.png").write_bytes((tmp_path / f"s{k}.png").read_bytes())
        records.append(FrameRecord(f"s{k}.png", "clip.mp4", frame / 25, frame, frame / 25, W, H))
    (even / "frames.csv").write_bytes(_render(records))
    [(data, kwargs, _)] = read_stills(even)
    assert isinstance(data, StillStack) and data.shape[0] == 3
    assert kwargs["translate"][0] == 0 and kwargs["scale"][0] == pytest.approx(12.5)

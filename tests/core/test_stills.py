"""StillStack / open_stills: lazy, ordered, letterboxed, bounded, never aborting."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_video_extract.core.manifest import FrameRecord, _render
from napari_video_extract.core.stills import StillStack, open_stills

W, H = 40, 30


def _colour(k: int) -> tuple[int, int, int]:
    return ((37 * k) % 256, (91 * k + 20) % 256, (13 * k + 200) % 256)


def _write_png(path: Path, k: int, size: tuple[int, int] = (W, H)) -> np.ndarray:
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = _colour(k)
    pixels[0, 0] = (255, 255, 255)  # a corner marker: orientation and exactness
    Image.fromarray(pixels).save(path)
    return pixels


def _write_manifest(folder: Path, rows: list[tuple[str, float, int]]) -> None:
    records = [FrameRecord(f, "clip.mp4", t, fr, t, W, H) for f, t, fr in rows]
    (folder / "frames.csv").write_bytes(_render(records))


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """img1..img12 (natural order differs from string order)."""
    pixels = [_write_png(tmp_path / f"img{k}.png", k) for k in range(1, 13)]
    return tmp_path, pixels


def test_shape_pixels_and_indexing(folder) -> None:
    path, pixels = folder
    stack = open_stills(path)
    assert stack.shape == (12, H, W, 3)
    assert stack.ndim == 4 == len(stack.shape)
    assert stack.dtype == np.uint8 and len(stack) == 12
    names = [Path(f).name for f in stack.features()["file"]]
    assert names == [f"img{k}.png" for k in range(1, 13)]
    np.testing.assert_array_equal(stack[0], pixels[0])
    np.testing.assert_array_equal(stack[-1], pixels[11])
    np.testing.assert_array_equal(stack[np.int64(9)], pixels[9])
    np.testing.assert_array_equal(stack[2:8:3], np.stack([pixels[2], pixels[5]]))
    np.testing.assert_array_equal(stack[[11, 0]], np.stack([pixels[11], pixels[0]]))
    np.testing.assert_array_equal(stack[3, 0, 0], [255, 255, 255])
    np.testing.assert_array_equal(stack[3, 5:7, ..., 1], pixels[3][5:7, :, 1])
    np.testing.assert_array_equal(np.asarray(stack), np.stack(pixels))
    with pytest.raises(IndexError):
        stack[12]


def test_time_order_and_features_from_frames_csv(folder) -> None:
    path, pixels = folder
    # The manifest lists four stills, times running against the name order.
    _write_manifest(path, [("img3.png", 2.5, 62), ("img1.png", 7.0, 175), ("img12.png", 0.5, 12)])
    stack = open_stills(path)
    names = [Path(f).name for f in stack.features()["file"]]
    assert names[:3] == ["img12.png", "img3.png", "img1.png"]
    # Unlisted images follow in natural name order, never dropped.
    assert names[3:] == [f"img{k}.png" for k in (2, 4, 5, 6, 7, 8, 9, 10, 11)]
    feats = stack.features()
    assert feats["time"][:4] == [0.5, 2.5, 7.0, None]
    assert feats["frame"][:4] == [12, 62, 175, None]
    assert feats["video"][:3] == ["clip.mp4"] * 3
    np.testing.assert_array_equal(stack[0], pixels[11])
    np.testing.assert_array_equal(stack[2], pixels[0])

    only_listed = open_stills(path / "frames.csv")
    assert [Path(f).name for f in only_listed.files] == ["img12.png", "img3.png", "img1.png"]
    np.testing.assert_array_equal(only_listed[1], pixels[2])


def test_other_sizes_are_letterboxed_not_dropped(tmp_path: Path) -> None:
    _write_png(tmp_path / "a1.png", 1)  # 40x30: the canvas
    wide = np.zeros((10, 40, 3), dtype=np.uint8)
    wide[:] = (200, 10, 10)
    Image.fromarray(wide).save(tmp_path / "a2.png")  # 4:1, fits the width
    Image.fromarray(np.full((60, 80, 3), 77, dtype=np.uint8)).save(tmp_path / "a3.png")  # 2x
    stack = open_stills(tmp_path)
    assert stack.shape == (3, H, W, 3)
    boxed = stack[1]
    np.testing.assert_array_equal(boxed[10:20], np.broadcast_to(wide, (10, 40, 3)))
    assert not boxed[:10].any() and not boxed[20:].any()  # black bars, centred
    np.testing.assert_array_equal(stack[2], np.full((H, W, 3), 77, dtype=np.uint8))
    assert stack.unreadable == {}


def test_unreadable_image_is_black_and_listed(folder) -> None:
    path, pixels = folder
    (path / "img5.png").write_bytes(b"not a png at all")
    (path / "img7.png").write_bytes((path / "img8.png").read_bytes()[:60])  # truncated
    stack = open_stills(path)
    assert stack.shape == (12, H, W, 3)
    assert not stack[4].any() and not stack[6].any()
    np.testing.assert_array_equal(stack[5], pixels[5])
    assert sorted(stack.unreadable) == [4, 6]
    assert all(stack.unreadable.values())


def test_a_slice_of_one_still_is_a_view_of_the_cached_image(folder) -> None:
    # napari slices a stack as data[k:k + 1]: the still is not copied again.
    path, pixels = folder
    stack = open_stills(path)
    one = stack[3:4]
    assert one.shape == (1, H, W, 3)
    np.testing.assert_array_equal(one[0], pixels[3])
    assert np.shares_memory(one, stack[3]) and not one.flags.writeable
    np.testing.assert_array_equal(stack[3:4, 0, :2, 2], pixels[3][None, 0, :2, 2])
    assert stack.cached_bytes == H * W * 3


def test_cache_is_bounded_in_bytes(folder) -> None:
    path, _ = folder
    frame = H * W * 3
    stack = StillStack(sorted(path.glob("*.png")), cache_bytes=3 * frame)
    for k in range(12):
        stack[k]
        assert stack.cached_bytes <= 3 * frame
    assert stack.cached_bytes == 3 * frame


def test_concurrent_reads_are_exact(folder) -> None:
    path, pixels = folder
    stack = open_stills(path, cache_bytes=2 * H * W * 3)  # forces evictions while reading
    errors: list[str] = []

    def read(offset: int) -> None:
        for n in range(60):
            k = (n * 5 + offset) % 12
            if not np.array_equal(stack[k], pixels[k]):
                errors.append(f"still {k}")

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_asarray_refuses_a_huge_stack(folder) -> None:
    path, _ = folder
    stack = StillStack(sorted(path.glob("*.png")), max_array_bytes=5 * H * W * 3)
    with pytest.raises(MemoryError, match="index the stack"):
        np.asarray(stack)
    assert stack[0:5].shape == (5, H, W, 3)  # slicing stays possible


_opened: list[str] = []
_watch: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _watch and isinstance(args[0], str) and args[0].startswith(_watch[0]):
        _opened.append(args[0])


@pytest.mark.slow
def test_a_folder_of_100k_images_opens_by_listing_only(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    _write_png(folder / "still_000000.png", 0)
    for k in range(1, 100_000):
        os.close(os.open(folder / f"still_{k:06d}.png", os.O_CREAT | os.O_WRONLY))
    sys.addaudithook(_audit)  # cannot be removed: it only records while _watch is set
    _watch.append(str(folder))
    try:
        stack = open_stills(folder)
    finally:
        _watch.clear()
    assert stack.shape == (100_000, H, W, 3)
    # One header read for the canvas size (plus the absent frames.csv), not 100,000.
    assert [Path(p).name for p in _opened if not p.endswith("frames.csv")] == ["still_000000.png"]
    assert not stack[99_999].any() and list(stack.unreadable) == [99_999]


def test_prefetch_decodes_each_still_once_and_serves_it_from_the_cache(
    folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_video_extract.core import stills

    path, pixels = folder
    stack = open_stills(path)
    decoded: list[str] = []
    gate = threading.Event()
    real = stills._decode

    def counting(file, width, height):
        decoded.append(Path(file).name)
        gate.wait(5)  # hold the prefetch mid-decode while the reader asks for it
        return real(file, width, height)

    monkeypatch.setattr(stills, "_decode", counting)
    thread = stack.prefetch([5, 0, 99])  # 99: out of range, ignored
    got: list[np.ndarray] = []
    reader = threading.Thread(target=lambda: got.append(stack[5:6]))
    reader.start()
    gate.set()
    reader.join(5)
    thread.join(5)
    assert not thread.is_alive() and not reader.is_alive()
    assert decoded == ["img6.png", "img1.png"]  # still 5 once, though read while decoding
    np.testing.assert_array_equal(got[0][0], pixels[5])
    np.testing.assert_array_equal(stack[0], pixels[0])
    assert decoded == ["img6.png", "img1.png"] and stack.cached_bytes == 2 * H * W * 3

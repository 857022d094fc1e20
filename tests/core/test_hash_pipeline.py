"""Pinning tests of the hashing fast paths: each equals the plain way of doing the same."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageOps

from napari_video_extract.core.borders import (
    _border_run,
    _edges_uniform,
    _is_border,
    crop_uniform_borders,
)
from napari_video_extract.core.hashing import hash_files
from napari_video_extract.core.normalise import load_image, open_for_hash
from napari_video_extract.core.verify import make_thumbnail


def photo(seed: int, size=(90, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(small).resize(size[::-1], Image.Resampling.BICUBIC))
    noise = rng.integers(-6, 7, size=smooth.shape)
    return np.clip(smooth.astype(int) + noise, 0, 255).astype(np.uint8)


def _plain_border_run(gray: np.ndarray, limit: float) -> int:
    reference = np.median(gray[0])
    deviation = np.abs(gray - reference)
    is_border = (deviation.mean(axis=1) <= limit) & ((deviation > 40).mean(axis=1) <= 0.01)
    if not is_border[0]:
        return 0
    not_border = np.flatnonzero(~is_border)
    return int(not_border[0]) if not_border.size else gray.shape[0]


def plain_crop(image: Image.Image, tolerance: float = 8.0, max_passes: int = 3) -> Image.Image:
    """The border crop as first written: every side's run measured on every pass."""
    for _ in range(max_passes):
        gray = np.asarray(image.convert("L"), dtype=np.int16)
        h, w = gray.shape
        if h < 16 or w < 16:
            return image
        core = gray[h // 4 : h - h // 4, w // 4 : w - w // 4]
        limit = min(tolerance, float(np.abs(core - core.mean()).mean()) / 3.0)
        top = _plain_border_run(gray[: h // 2], limit)
        bottom = _plain_border_run(gray[: h - h // 2 - 1 : -1], limit)
        left = _plain_border_run(gray[:, : w // 2].T, limit)
        right = _plain_border_run(gray[:, : w - w // 2 - 1 : -1].T, limit)
        if top + bottom == 0 and left + right == 0:
            return image
        if h - top - bottom < 8 or w - left - right < 8:
            return image
        image = image.crop((left, top, w - right, h - bottom))
    return image


def framed(seed: int) -> Image.Image:
    """A picture with random bars: black or grey, noisy or clean, some sides only."""
    rng = np.random.default_rng(seed)
    picture = photo(seed)
    if seed % 5 == 0:
        picture = (picture // 10 + 120).astype(np.uint8)  # low contrast: edges look flat
    h, w = picture.shape[:2]
    for side in range(4):
        if rng.random() < 0.4:
            continue
        n = int(rng.integers(1, 30))
        level = int(rng.choice([0, 16, 128, 255]))
        noise = int(rng.choice([0, 3, 12, 60]))
        shape = (n, w if side < 2 else h, 3)
        bar = np.clip(level + rng.integers(-noise, noise + 1, shape), 0, 255)
        if side == 0:
            picture[:n] = bar
        elif side == 1:
            picture[h - n :] = bar
        elif side == 2:
            picture[:, :n] = bar[:, :h].transpose(1, 0, 2)
        else:
            picture[:, w - n :] = bar[:, :h].transpose(1, 0, 2)
    return Image.fromarray(picture).convert("L" if seed % 2 else "RGB")


def test_border_crop_equals_the_plain_crop():
    cropped = 0
    for seed in range(120):
        image = framed(seed)
        fast, plain = crop_uniform_borders(image), plain_crop(image)
        assert fast.size == plain.size, seed
        assert np.array_equal(np.asarray(fast), np.asarray(plain)), seed
        cropped += fast.size != image.size
    assert 30 < cropped < 120  # both kinds of case were exercised


def test_border_line_test_equals_median_and_mean():
    # Whole-number arithmetic (twice the median, twice each deviation) against
    # np.median / np.mean, with tolerances set exactly on a line's mean
    # deviation, odd and even lengths, and lines 1% off by more than 40 levels.
    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(400):
        n = int(rng.integers(3, 200))
        level = int(rng.integers(0, 256))
        spread = int(rng.choice([0, 2, 9, 30]))
        lines = np.clip(level + rng.integers(-spread, spread + 1, (4, n)), 0, 255)
        lines[:, : int(rng.integers(0, 3))] = rng.integers(0, 256)  # a few outliers
        lines = lines.astype(np.int16)
        deviation = np.abs(lines - np.median(lines, axis=1)[:, None])
        means = deviation.mean(axis=1)
        for tolerance in (float(means[trial % 4]), float(np.nextafter(means[0], -1)), 8.0):
            plain = (means <= tolerance) & ((deviation > 40).mean(axis=1) <= 0.01)
            assert np.array_equal(_is_border(lines, tolerance), plain), trial
            row = lines[trial % 4 : trial % 4 + 1].repeat(3, axis=0)
            reference = np.median(row[0])
            dev = np.abs(row - reference)
            ok = (dev.mean(axis=1) <= tolerance) & ((dev > 40).mean(axis=1) <= 0.01)
            assert _border_run(row, tolerance) == (3 if ok[0] else 0), trial
            checked += int(plain.sum())
    assert checked > 100  # borders and non-borders both seen


def test_four_edges_at_once_equal_four_line_tests():
    # The edges share one padded array (same parity of height and width) or
    # are tested two by two (else): either way each edge's verdict is that
    # of its own line test, with edges near and far from the tolerance.
    rng = np.random.default_rng(11)
    verdicts = set()
    for trial in range(600):
        h, w = (int(v) for v in rng.integers(16, 120, 2))
        gray = rng.integers(0, 256, (h, w)).astype(np.int16)
        level, spread = int(rng.integers(0, 256)), int(rng.choice([1, 6, 12, 25]))
        for edge in np.flatnonzero(rng.random(4) < 0.6):
            index = (0, -1)[edge % 2]
            line = gray[index] if edge < 2 else gray[:, index]
            line[:] = np.clip(level + rng.integers(-spread, spread + 1, line.size), 0, 255)
        tolerance = float(rng.choice([8.0, 3.3, 0.7]))
        rows, cols = gray[[0, h - 1]], gray[:, [0, w - 1]].T
        expected = np.concatenate([_is_border(rows, tolerance), _is_border(cols, tolerance)])
        assert np.array_equal(_edges_uniform(gray, tolerance), expected), trial
        verdicts.add(((h - w) % 2, tuple(expected)))
    assert len(verdicts) > 20  # both layouts, many combinations of edges


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_one_open_equals_load_image(tmp_path, orientation):
    picture = photo(orientation, size=(360, 640))
    picture[:40] = 0  # a bar, cropped after the rotation
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "still.jpg"
    Image.fromarray(picture).save(path, exif=exif, quality=92)
    image, width, height = open_for_hash(path, thumbnail_side=64)
    reference = load_image(path, thumbnail_side=64)
    assert np.array_equal(np.asarray(image), np.asarray(reference))
    with Image.open(path) as stored:
        upright = ImageOps.exif_transpose(stored)
        assert (width, height) == upright.size
    assert (width, height) == ((360, 640) if orientation in (6, 8) else (640, 360))


def test_file_hashes_equal_imagehash_of_the_normalised_image(tmp_path):
    paths = []
    for seed in range(3):
        path = tmp_path / f"s{seed}.jpg"
        Image.fromarray(photo(seed, size=(360, 640))).save(path, quality=90)
        paths.append(path)
    for method, size, reference in [
        ("phash", 8, lambda im: imagehash.phash(im, hash_size=8)),
        ("phash", 16, lambda im: imagehash.phash(im, hash_size=16)),
        ("dhash", 8, lambda im: imagehash.dhash(im, hash_size=8)),
        ("ahash", 8, lambda im: imagehash.average_hash(im, hash_size=8)),
    ]:
        result = hash_files(
            paths, method=method, hash_size=size, use_cache=False, with_thumbnails=True
        )
        for path, record in zip(paths, result.files, strict=True):
            normalised = load_image(path, thumbnail_side=max(64, 8 * size))
            assert record.hash.to_hex() == str(reference(normalised)), (method, size)
            assert np.array_equal(record.thumbnail, make_thumbnail(normalised))

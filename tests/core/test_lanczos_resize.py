"""Our Lanczos shrink equals Pillow's ``Image.resize(..., LANCZOS)`` pixel for pixel."""

from __future__ import annotations

import numpy as np
from PIL import Image

from napari_video_extract.core.lanczos_resize import (
    _LEARN_AFTER,
    _pass_order,
    _resize,
    lanczos_resize,
)


def _pillow(image: Image.Image, width: int, height: int) -> np.ndarray:
    small = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float64)


def test_equals_pillow_on_random_sizes_and_pictures():
    # Noise, 0/255 pictures (where the filter overshoots and the order of the
    # passes shows) and flat ones; landscape, portrait, tiny, up- and
    # down-scaling, one pass or two.
    rng = np.random.default_rng(3)
    learnt = 0
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 200, 2))
        width, height = (32, 32) if trial % 2 else (int(v) for v in rng.integers(1, 70, 2))
        kind = trial % 3
        if kind == 0:
            pixels = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif kind == 1:
            pixels = np.where(rng.random((h, w)) < 0.5, 0, 255).astype(np.uint8)
        else:
            pixels = np.full((h, w), rng.integers(0, 256), dtype=np.uint8)
        image = Image.fromarray(pixels)
        expected = _pillow(image, width, height)
        for _ in range(_LEARN_AFTER + 1):  # Pillow until the size is learnt, then ours
            got = lanczos_resize(image, width, height)
            assert got.dtype == np.float64
            assert np.array_equal(got, expected), (trial, (w, h), (width, height))
        order = _pass_order(h, w, width, height)
        if order is not None:  # the matrix products themselves, whatever the caches hold
            ours = _resize(pixels.astype(np.float64), width, height, order)
            assert np.array_equal(ours, expected), (trial, (w, h), (width, height))
            learnt += 1
    assert learnt > 50  # the matrix products did the work, not the fallback


def test_the_order_of_the_passes_matters_and_is_learnt():
    # A tall and a wide picture shrunk to 32x32: 0/255 pictures give other
    # pixels when the passes run in the other order, and both match Pillow.
    rng = np.random.default_rng(4)
    for h, w in ((190, 60), (60, 190)):
        pixels = np.where(rng.random((h, w)) < 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        for _ in range(_LEARN_AFTER + 1):
            assert np.array_equal(lanczos_resize(image, 32, 32), _pillow(image, 32, 32))
        order = _pass_order(h, w, 32, 32)
        assert order is not None
        other = _resize(pixels.astype(np.float64), 32, 32, not order)
        assert not np.array_equal(other, _pillow(image, 32, 32))

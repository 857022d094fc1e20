"""The sides of a comparison: what is made lazily equals what was made at once."""

from __future__ import annotations

import numpy as np
from PIL import Image

from napari_video_extract.core import comparison_sides as sides
from napari_video_extract.core.thumb_filters import blur, unit
from napari_video_extract.core.verify import THUMB_SHAPE, Verifier, make_thumbnail


def thumbnails(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, *THUMB_SHAPE), dtype=np.uint8)
    base = Image.fromarray(rng.integers(0, 256, size=(9, 16), dtype=np.uint8))
    base = base.resize((400, 225), Image.Resampling.BICUBIC)
    for i in range(n):
        shift = int(rng.integers(0, 12))
        view = np.asarray(base.crop((shift, shift, 384 + shift, 216 + shift)), dtype=float)
        view = np.clip(view + rng.normal(0, 4, view.shape), 0, 255).astype(np.uint8)
        out[i] = make_thumbnail(Image.fromarray(view))
    return out


def test_derivative_templates_of_one_zoom_equal_those_of_all_zooms():
    thumb = thumbnails(1, seed=1)[0]
    templates = sides.Templates(thumb)
    band = sides.band_pass(thumb[None])[0]
    smooth = sides.zoomed(blur(band[None], sides.DERIVATIVE_SIGMA)[0])  # every zoom at once
    all_y, all_x = unit(np.diff(smooth, axis=1)), unit(np.diff(smooth, axis=2))
    for k in (4, 0, len(sides.ZOOMS) - 1):
        grad_y, grad_x = templates.grads(k)
        assert np.array_equal(grad_y, all_y[k]) and np.array_equal(grad_x, all_x[k])
    assert sorted(templates.grad_cache) == [0, 4, len(sides.ZOOMS) - 1]
    assert templates.grads(4)[0] is templates.grad_cache[4][0]  # made once


def test_search_side_derivatives_are_the_windows_differences():
    thumb = thumbnails(1, seed=2)[0]
    search = sides.searched(thumb)[0]
    smooth = blur(sides.band_pass(thumb[None]), sides.DERIVATIVE_SIGMA)[0]
    th, tw = sides.template_shape()
    window = smooth[3 : 3 + th, 7 : 7 + tw]
    assert np.array_equal(search.grad_y[3 : 3 + th - 1, 7 : 7 + tw], np.diff(window, axis=0))
    assert np.array_equal(search.grad_x[3 : 3 + th, 7 : 7 + tw - 1], np.diff(window, axis=1))


def test_template_bytes_count_the_derivative_templates_made_later():
    thumbs = thumbnails(12, seed=3)
    v = Verifier(thumbs)
    for i in range(0, 12, 3):
        for j in range(12):
            v.score(i, j)
    assert any(t.grad_cache for t in v._templates.values())
    assert v._template_bytes == sum(sides.nbytes(t) for t in v._templates.values())

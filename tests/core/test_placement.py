"""The bounded search for the best placement gives the full search's answer."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from napari_video_extract.core import verify
from napari_video_extract.core.hashing import hash_frames_and_thumbnails
from napari_video_extract.core.placement import MAX_CANDIDATES


def _picture(seed: int, *, zoom: float = 1.0, dx: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)).resize((640, 360))
    draw = ImageDraw.Draw(image)
    for _ in range(50):
        x, y = int(rng.integers(0, 640)), int(rng.integers(0, 360))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        w, h = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        draw.rectangle((x, y, x + w, y + h), fill=fill)
    bw, bh = 640 / zoom, 360 / zoom
    box = ((640 - bw) / 2 + dx, (360 - bh) / 2, (640 + bw) / 2 + dx, (360 + bh) / 2)
    return np.asarray(image.resize((640, 360), Image.Resampling.BILINEAR, box=box))


def test_bounded_search_finds_the_full_search_placement():
    frames = np.stack(
        [
            _picture(1, zoom=1.04),
            _picture(1, zoom=1.09, dx=9),  # 5 % closer, panned
            _picture(1, zoom=1.02, dx=-3),
            _picture(2, zoom=1.04),  # another picture
        ]
    )
    _, thumbs = hash_frames_and_thumbnails(frames)
    searched = verify._searched(thumbs)
    for kept in range(4):
        moving = verify._Templates(thumbs[kept], searched[kept].image)
        for other in range(4):
            search = searched[other]
            full = verify._correlations(search, moving) / search.norm
            found = verify._placement(search, moving).best
            assert found is not None
            k, dy, dx, ncc = found
            assert (k, dy, dx) == np.unravel_index(int(np.argmax(full)), full.shape)
            assert abs(ncc - float(full.max())) < 1e-5
    # The same picture aligns (high NCC); a different one does not.
    moving = verify._Templates(thumbs[0], searched[0].image)
    assert verify._placement(searched[1], moving).best[3] > 0.8
    assert verify._placement(searched[3], moving).best[3] < 0.5


def test_bounded_search_gives_up_when_every_placement_may_be_best():
    _, thumbs = hash_frames_and_thumbnails(_picture(3, zoom=1.04)[None])
    search = verify._searched(thumbs)[0]
    moving = verify._Templates(thumbs[0], search.image)
    search.norm = np.full_like(search.norm, np.inf)  # every window flat: all NCCs 0
    assert verify._placement(search, moving).best is None
    assert search.norm.size * len(verify.ZOOMS) > MAX_CANDIDATES

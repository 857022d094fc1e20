"""A subject on a flat, lightly textured background under a slow zoom (found by eval_dedup.py).

The uniform-border crop takes rows of such a background for a border, by an
amount that changes with the noise from still to still, so the thumbnails of
one shot show different regions and the shot splits (``issue-long``: the
cell image; ``documents-long``, ``mixed-long``: a region of coins).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from napari_video_extract.core.dedup_settings import default_threshold
from napari_video_extract.core.hashing import hash_frames_and_thumbnails
from napari_video_extract.core.matching import cluster_verified

SIZE = (640, 360)
ZOOMS = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07)  # one shot, a still a second


def cell_on_background() -> Image.Image:
    """A bright, textured cell in a dark ring on a grey background with faint texture."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    image = 90 + 12 * np.sin(x / 23.0) * np.sin(y / 17.0) + rng.normal(0, 4, x.shape)
    r = np.hypot((x - 380) / 90, (y - 170) / 60)
    image = np.where(r < 1, 200 + 20 * np.sin(x / 5.0) * np.cos(y / 7.0), image)
    image = np.where((r >= 1) & (r < 1.3), 40, image)
    return Image.fromarray(np.stack([np.clip(image, 0, 255).astype(np.uint8)] * 3, axis=-1))


def shot() -> np.ndarray:
    """The stills of a slow zoom and pan over the picture, noised and JPEG-compressed."""
    base = cell_on_background()
    w, h = SIZE
    frames = []
    for k, z in enumerate(ZOOMS):
        bw, bh = w / (1 + z), h / (1 + z)
        box = ((w - bw) / 2 + 1.5 * k, (h - bh) / 2, (w + bw) / 2 + 1.5 * k, (h + bh) / 2)
        out = np.asarray(base.resize(SIZE, Image.Resampling.BILINEAR, box=box), dtype=float)
        out += np.random.default_rng(k).normal(0, 8, out.shape)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=60)
        frames.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(frames)


def _clusters(frames: np.ndarray, *, crop_borders: bool) -> int:
    # One video: its stills share one crop box, as they share the time neighbours.
    one_video = np.zeros(len(frames), dtype=np.int64)
    hashes, thumbs = hash_frames_and_thumbnails(
        frames, crop_borders=crop_borders, crop_groups=one_video
    )
    result = cluster_verified(
        hashes,
        thumbs,
        threshold=default_threshold(verify=True),
        sequence=one_video,
    )
    return result.n_clusters


def test_subject_on_flat_background_is_one_cluster_without_the_border_crop():
    assert _clusters(shot(), crop_borders=False) == 1


def test_subject_on_flat_background_is_one_cluster():
    assert _clusters(shot(), crop_borders=True) == 1

"""Sharpness of an image: the variance of its Laplacian (higher is sharper)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from napari_video_extract.core.normalise import load_image, to_8bit

__all__ = ["file_sharpness", "sharpness"]


def sharpness(image: np.ndarray | Image.Image) -> float:
    """Variance of the Laplacian: higher means sharper (less blur).

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), or PIL.Image.Image
        Colour images are averaged over channels (alpha ignored).

    Returns
    -------
    float
        Variance of the 4-neighbour Laplacian; 0.0 for images smaller than 3x3.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(to_8bit(image, color=False))
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3:
        channels = array.shape[2]
        array = array[..., : 3 if channels >= 3 else 1].mean(axis=2)
    if array.ndim != 2:
        raise ValueError(f"expected a (H, W) or (H, W, C) image, got shape {array.shape}")
    if array.shape[0] < 3 or array.shape[1] < 3:
        return 0.0
    lap = (
        array[:-2, 1:-1] + array[2:, 1:-1] + array[1:-1, :-2] + array[1:-1, 2:]
        - 4.0 * array[1:-1, 1:-1]
    )  # fmt: skip
    return float(lap.var())


_SHARPNESS_SIDE = 512


def file_sharpness(path: str) -> float:
    """Sharpness measured at a fixed scale (long side 512) so sizes compare."""
    image = load_image(path, thumbnail_side=_SHARPNESS_SIDE, crop_borders=False)
    scale = _SHARPNESS_SIDE / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return sharpness(np.asarray(image))

"""Lazy stacks for the review's "show only kept frames" layer.

Both decode on access only (napari asks for the frame on screen): a subset of
another layer's frames, or a list of image files letterboxed to one shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract.core.stack_index import LazyStack

__all__ = ["FileStack", "FrameSubset"]


class _LazyStack(LazyStack):
    def _one(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(first, int | np.integer):
            frame = self._one(int(first) % len(self))
            return frame[rest] if rest else frame
        indices = np.arange(len(self))[first]
        out = np.stack([self._one(int(i)) for i in np.atleast_1d(indices)])
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class FrameSubset(_LazyStack):
    """Frames ``indices`` of a (lazy) stack, read when shown."""

    def __init__(self, data: Any, indices: Sequence[int]) -> None:
        self._data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.shape = (len(self.indices), *tuple(data.shape[1:]))
        self.dtype = np.dtype(data.dtype)

    def _one(self, index: int) -> np.ndarray:
        return np.asarray(self._data[int(self.indices[index])])


class FileStack(_LazyStack):
    """Image files as one RGB stack, decoded when shown, letterboxed to the first's size."""

    def __init__(self, paths: Sequence[Path]) -> None:
        from PIL import Image

        self.paths = list(paths)
        with Image.open(self.paths[0]) as first:
            w, h = first.size
        self.shape = (len(self.paths), h, w, 3)

    def _one(self, index: int) -> np.ndarray:
        from PIL import Image, ImageOps

        out = np.zeros(self.shape[1:], np.uint8)
        try:
            with Image.open(self.paths[index]) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
                image.thumbnail((self.shape[2], self.shape[1]))
                pixels = np.asarray(image)
        except OSError:
            return out
        h, w = pixels.shape[:2]
        y, x = (self.shape[1] - h) // 2, (self.shape[2] - w) // 2
        out[y : y + h, x : x + w] = pixels
        return out

"""Pixel filters of the verification thumbnails: Gaussian blur, window norms, unit patches.

Used by :mod:`~napari_video_extract.core.verify` on stacks of thumbnails.
Matrix products here always multiply one image (or a fixed number of its
rows) at a time, with the same shapes whatever the stack: BLAS results can
differ in the last bits with the shapes of a call, and a still's score must
not depend on its neighbours in a batch. The shapes also stay under
OpenBLAS's threading threshold (a product of fewer than 2 x 65,536 x 4
multiply-adds runs on one thread: threads on such small arrays cost more
than the work, 30 times more on a busy 2-core machine).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["blur", "unit", "window_norms"]

#: Kernel radius (pixels) above which a blur is a matrix product (BLAS
#: beats scipy's direct separable filter from radius 5, sigma 1.5: 70 vs
#: 90-120 us per thumbnail); shorter kernels go through that filter.
_DIRECT_RADIUS = 4
#: Rows per matrix product of a blur (see the module docstring): 24 x 128 x
#: 128 multiply-adds stays on one thread; 24 rows cost ~25 % less than 8
#: (fewer, larger products) and divide the 72 rows of a thumbnail.
_ROWS = 24
#: ... except for the band-pass's long kernel (sigma 8), kept at the 8 rows
#: its images were always made with: products of other shapes round the
#: last bits differently, which flips the rare exact ties between two
#: placements and with them the reported score (1 of the 182,389 pairs of
#: ``bench_verify.py global``: 0.368 or 0.377, at NCCs 2e-8 apart).
_LONG_ROWS = 8
_LONG_RADIUS = 12  # radius from which a kernel is "long"
_TRUNCATE = 3.0  # the Gaussian is cut at 3 sigma


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (edges: nearest pixel) of each image of a (B, H, W) float32 stack.

    Short kernels: scipy's separable filter on the whole stack. Longer ones:
    the same weights (scipy's kernel, edges folded in) as an (N, N) matrix per
    axis, applied ``_ROWS`` (``_LONG_ROWS``) rows at a time; equal to scipy's
    result up to float32 rounding (~2e-7 of the range).
    """
    images = np.asarray(images, dtype=np.float32)
    radius = int(_TRUNCATE * sigma + 0.5)
    if radius <= _DIRECT_RADIUS:
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(images, (0, sigma, sigma), mode="nearest", truncate=_TRUNCATE)
    step = _LONG_ROWS if radius >= _LONG_RADIUS else _ROWS
    h, w = images.shape[-2:]
    down = _along_rows(np.swapaxes(images, -1, -2), _blur_matrix(h, sigma), step)
    return _along_rows(np.swapaxes(down, -1, -2), _blur_matrix(w, sigma), step)


def _along_rows(x: np.ndarray, matrix: np.ndarray, step: int) -> np.ndarray:
    """``x @ matrix`` for a (B, R, N) stack, ``step`` rows per product."""
    b, r, n = x.shape
    pad = -r % step
    rows = np.zeros((b, r + pad, n), dtype=np.float32)
    rows[:, :r] = x
    out = rows.reshape(b, (r + pad) // step, step, n) @ matrix
    return out.reshape(b, r + pad, n)[:, :r]


@functools.lru_cache(maxsize=8)
def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix: ``row @ m`` is scipy's ``gaussian_filter1d(row, sigma, mode="nearest")``."""
    radius = int(_TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 / sigma**2 * offsets.astype(np.float64) ** 2)
    kernel /= kernel.sum()
    out = np.zeros((n, n), dtype=np.float64)
    for dst in range(n):
        np.add.at(out[:, dst], np.clip(dst + offsets, 0, n - 1), kernel)
    return out.astype(np.float32)


def window_norms(images: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Root of the summed squared deviation of every (th, tw) window.

    The window sums are products with 0/1 band matrices in float64, one
    image per product. A flat window correlates with nothing: its norm is
    infinite (score 0).
    """
    x = np.asarray(images, dtype=np.float64)
    rows, cols = _box_matrices(x.shape[-2], x.shape[-1], th, tw)
    n = th * tw
    w1 = rows @ x @ cols
    w2 = rows @ (x * x) @ cols
    var = np.maximum(w2 - w1 * w1 / n, 0.0)
    return np.where(var > n * 0.25, np.sqrt(var), np.inf).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _box_matrices(h: int, w: int, th: int, tw: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows @ x @ cols`` sums every (th, tw) window of an (h, w) image."""
    y, x = np.arange(h), np.arange(w)
    top, left = np.arange(h - th + 1)[:, None], np.arange(w - tw + 1)[None, :]
    rows = ((y[None, :] >= top) & (y[None, :] < top + th)).astype(np.float64)
    cols = ((x[:, None] >= left) & (x[:, None] < left + tw)).astype(np.float64)
    return rows, cols


def unit(patches: np.ndarray) -> np.ndarray:
    """Each patch of a stack minus its mean, divided by its norm (0 stays 0)."""
    out = np.asarray(patches, dtype=np.float32)
    out = out - out.mean(axis=(-2, -1), keepdims=True)
    norms = np.sqrt(np.einsum("...ij,...ij->...", out, out))[..., None, None]
    out /= np.where(norms > 0, norms, np.inf)
    return out

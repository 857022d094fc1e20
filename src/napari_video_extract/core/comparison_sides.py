"""The two sides of an aligned comparison of thumbnails, each made once per image.

:mod:`~napari_video_extract.core.verify` compares a kept image with a
candidate by moving the kept one's zoomed centre (its **templates**,
:class:`Templates`, made once per kept image) over the other (its **search
side**, :class:`Searched`, made once per image, a batch at a time). This
module holds the comparison's constants and makes both sides; scoring a
pair is in :mod:`~napari_video_extract.core.verify`.

What a pair needs is made here, once per image, so a pair costs only the
placement search and a few dot products: the search side keeps the
band-passed image, its window norms, the low-frequency block of its spectrum
(the FFT itself is made again for the rare full search) and both derivatives
of its smoothed image; the templates keep the zoomed patches and their
spectra's low block, and make the derivative templates of a zoom the first
time a pair is aligned at it (a kept image's pairs use 1.8 of the 9 zooms on
average on the 1,545 stills of ``benchmarks/bench_verify.py``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from napari_video_extract.core.placement import high_norm, low_block
from napari_video_extract.core.thumb_filters import blur, unit, window_norms

__all__ = [
    "BAND_PASS_SIGMAS",
    "DERIVATIVE_SIGMA",
    "MARGIN",
    "THUMB_SHAPE",
    "ZOOMS",
    "Searched",
    "Templates",
    "band_pass",
    "fft",
    "nbytes",
    "searched",
    "searched_batch",
    "template_shape",
    "zoomed",
]

#: Thumbnail (height, width) in pixels; 16:9 like most video.
THUMB_SHAPE = (72, 128)
#: Fraction cropped on each side of the zoomed picture: the largest pan found.
MARGIN = 0.1
#: Relative zoom factors tried (both ways: zoom in and out up to 8 %).
ZOOMS = (1 / 1.08, 1 / 1.06, 1 / 1.04, 1 / 1.02, 1.0, 1.02, 1.04, 1.06, 1.08)
#: Gaussian sigmas (thumbnail pixels) of the band-pass applied before
#: comparing. Subtracting the coarse blur removes the overall light-to-dark
#: layout (without it, different pictures correlate at 0.6-0.7; with it, at
#: most ~0.3); the fine blur makes the score forgiving of the sub-pixel zoom
#: and shift left between the tried factors (small stars, fine texture).
BAND_PASS_SIGMAS = (1.0, 8.0)
#: Extra blur (thumbnail pixels) before the directional check.
DERIVATIVE_SIGMA = 1.5

FLAT_STD = 2.0  # grey levels: below this a thumbnail is a flat field


def fft():
    """``scipy.fft``, imported on first use.

    scipy.fft keeps float32 as float32 (numpy's FFT computes in float64 and
    is ~4x slower on these sizes). Imported late: hashing workers import
    :mod:`~napari_video_extract.core.verify` for its thumbnails only.
    """
    import scipy.fft

    return scipy.fft


def band_pass(thumbs: np.ndarray) -> np.ndarray:
    """(B, H, W) uint8 -> float32 band-passed stack."""
    image = np.asarray(thumbs, dtype=np.float32)
    fine, coarse = BAND_PASS_SIGMAS
    return blur(image, fine) - blur(image, coarse)


def template_shape() -> tuple[int, int]:
    """(height, width) of a template: the thumbnail without MARGIN on each side."""
    h, w = THUMB_SHAPE
    return round(h * (1 - 2 * MARGIN)), round(w * (1 - 2 * MARGIN))


class Searched:
    """The side searched over: band-passed image, window norms, spectrum block, derivatives.

    ``grad_y`` and ``grad_x`` are the vertical and horizontal differences of
    the smoothed band-passed image (``DERIVATIVE_SIGMA``), whole: a window of
    them is the difference of that window.
    """

    __slots__ = ("array_bytes", "flat", "grad_x", "grad_y", "high", "image", "low", "mean", "norm")


#: Thumbnails whose search side is made in one batch of FFTs and filters:
#: the temporaries of a batch (float32 and float64 copies, spectra, blurs)
#: are ~0.6 MB per thumbnail, so a batch stays a few MB whatever the block.
SEARCH_BATCH = 16


def searched(thumbs: np.ndarray) -> list[Searched]:
    """The search side of a stack of thumbnails, ``SEARCH_BATCH`` at a time.

    Each still's arrays are its own copies, not views of the batch: a cache
    keeping one still must not keep its whole batch alive. A still's result
    does not depend on its batch (the filters work one image at a time, see
    :mod:`~napari_video_extract.core.thumb_filters`; pocketfft transforms
    each image on its own; ``tests/core/test_verify_memory.py`` checks it).
    """
    raw_all = np.asarray(thumbs)
    if raw_all.ndim == 2:
        raw_all = raw_all[None]
    out = []
    for lo in range(0, len(raw_all), SEARCH_BATCH):
        out += searched_batch(raw_all[lo : lo + SEARCH_BATCH])
    return out


def searched_batch(thumbs: np.ndarray) -> list[Searched]:
    """The search side of one batch of thumbnails (see :func:`searched`)."""
    raw = np.asarray(thumbs, dtype=np.float32)
    means = raw.mean(axis=(1, 2))
    flat = raw.std(axis=(1, 2)) < FLAT_STD
    band = band_pass(raw)
    spectra = fft().rfft2(band)
    lows, highs = low_block(spectra), high_norm(spectra, THUMB_SHAPE[1])
    norms = window_norms(band, *template_shape())
    smooth = blur(band, DERIVATIVE_SIGMA)
    grad_y, grad_x = np.diff(smooth, axis=1), np.diff(smooth, axis=2)
    out = []
    # Every still's arrays have the same shapes: their bytes, counted once.
    array_bytes = sum(a[0].nbytes for a in (band, norms, lows, grad_y, grad_x)) if len(raw) else 0
    for b in range(len(raw)):
        s = Searched()
        s.mean, s.flat, s.image = float(means[b]), bool(flat[b]), band[b].copy()
        s.norm, s.low, s.high = norms[b].copy(), lows[b].copy(), float(highs[b])
        s.grad_y, s.grad_x = grad_y[b].copy(), grad_x[b].copy()
        s.array_bytes = array_bytes
        out.append(s)
    return out


def nbytes(value: Searched | Templates) -> int:
    """Bytes held by the arrays of a cache entry.

    Counted when the entry is made (the caches ask on every insertion and
    eviction: walking the arrays each time took ~6 % of the clustering loop);
    a template's derivative templates, made later, are added per zoom.
    """
    if isinstance(value, Templates):
        grads = sum(gy.nbytes + gx.nbytes for gy, gx in value.grad_cache.values())
        return value.array_bytes + grads
    return value.array_bytes


def zoomed(image: np.ndarray, zooms: range | list[int] | None = None) -> np.ndarray:
    """The centre of ``image`` (template size) zoomed by ZOOMS (or those indexed by ``zooms``)."""
    h, w = image.shape
    th, tw = template_shape()
    indices = range(len(ZOOMS)) if zooms is None else zooms
    pil = Image.fromarray(np.asarray(image, dtype=np.float32), "F")
    out = np.empty((len(indices), th, tw), dtype=np.float32)
    for row, k in enumerate(indices):
        z = ZOOMS[k]
        bh, bw = th / z, tw / z
        box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
        out[row] = np.asarray(pil.resize((tw, th), Image.Resampling.BILINEAR, box=box))
    return out


class Templates:
    """The side that moves: its centre zoomed by every factor of ZOOMS.

    Parameters
    ----------
    thumb : ndarray of uint8, shape THUMB_SHAPE
        The kept image's thumbnail.
    band : ndarray of float32, optional
        Its band-passed image, when made already (the search side's ``image``).
    """

    __slots__ = (
        "array_bytes",
        "conj_low",
        "flat",
        "grad_cache",
        "high",
        "mean",
        "patches",
        "smooth",
    )

    def __init__(self, thumb: np.ndarray, band: np.ndarray | None = None) -> None:
        raw = np.asarray(thumb)
        self.mean = float(raw.mean())
        self.flat = float(raw.std()) < FLAT_STD
        if band is None:
            band = band_pass(raw[None])[0]
        self.patches = unit(zoomed(band))
        # Only the low block is kept (the full spectra are 2x its memory and
        # only the rare full search needs them: it makes them again).
        spectra = self.conj_spectra()
        self.conj_low = low_block(spectra)
        self.high = high_norm(spectra, THUMB_SHAPE[1])
        self.smooth = blur(band[None], DERIVATIVE_SIGMA)[0]
        self.grad_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.array_bytes = self.patches.nbytes + self.conj_low.nbytes + self.smooth.nbytes
        self.array_bytes += self.high.nbytes

    def grads(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit vertical and horizontal derivative templates at zoom ``k`` (made on first use)."""
        found = self.grad_cache.get(k)
        if found is None:
            smooth = zoomed(self.smooth, [k])
            found = unit(np.diff(smooth, axis=1))[0], unit(np.diff(smooth, axis=2))[0]
            self.grad_cache[k] = found
        return found

    def conj_spectra(self) -> np.ndarray:
        """Conjugated ``rfft2`` of each patch zero-padded to THUMB_SHAPE."""
        h, w = THUMB_SHAPE
        th, tw = self.patches.shape[1:]
        padded = np.zeros((len(ZOOMS), h, w), dtype=np.float32)
        padded[:, :th, :tw] = self.patches
        return np.conj(fft().rfft2(padded))

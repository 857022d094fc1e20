"""Aligned comparison of two stills: does a hash candidate really show the same view?

A perceptual hash proposes candidate pairs; this module decides. Each image is
reduced once, in the hashing pass, to a small grey **thumbnail**
(:data:`THUMB_SHAPE`, made by :func:`make_thumbnail` from the same normalised
image the hash is computed from: EXIF orientation applied, borders cropped).
Both are band-passed (:data:`BAND_PASS_SIGMAS`: the overall light-to-dark
layout and pixel noise removed), then compared by the best **normalised
cross-correlation** (NCC) of the central part of one (:data:`MARGIN` cropped
on every side), zoomed by each of :data:`ZOOMS`, against every placement in
the other, computed for all shifts at once with FFTs. At the best alignment
the NCC of the vertical and of the horizontal derivatives must agree too (the
lowest of the three is the score), so lines of text or stripes that match
along one direction only do not count as the same picture. The result is in
[-1, 1]: 1 is the same picture up to brightness and contrast, about 0
unrelated pictures. Small pans (up to
``MARGIN`` of the width), zoom by up to 8 % either way, sensor noise and
compression artefacts cost little (see ``benchmarks/eval_dedup.py``).

``changes="local"`` is stricter: after the same alignment, both pictures are
normalised and split into :data:`LOCAL_GRID` blocks; the score is the lowest
block score, so one block where something changed (a person walking into a
static scene) lowers it although the whole picture still correlates well.

Module-level API
----------------
:func:`make_thumbnail`
    PIL image -> ``uint8`` thumbnail.
:func:`similarity`
    One pair of thumbnails -> score.
:class:`Verifier`
    Many pairs among a stack of thumbnails, with the per-image FFTs cached
    (what the clustering uses).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PIL import Image

from napari_video_extract.core.dedup_settings import (
    CHANGES,
    DEFAULT_MIN_SIMILARITY,
    check_changes,
    default_min_similarity,
)

__all__ = [
    "BAND_PASS_SIGMAS",
    "CHANGES",
    "DEFAULT_MIN_SIMILARITY",
    "DERIVATIVE_SIGMA",
    "LOCAL_GRID",
    "MARGIN",
    "THUMB_SHAPE",
    "ZOOMS",
    "Verifier",
    "check_changes",
    "default_min_similarity",
    "make_thumbnail",
    "similarity",
]

#: Thumbnail (height, width) in pixels; 16:9 like most video.
THUMB_SHAPE = (72, 128)
#: Fraction cropped on each side of the zoomed picture: the largest pan found.
MARGIN = 0.1
#: Relative zoom factors tried (both ways: zoom in and out up to 8 %).
ZOOMS = (1 / 1.08, 1 / 1.06, 1 / 1.04, 1 / 1.02, 1.0, 1.02, 1.04, 1.06, 1.08)
#: Blocks (rows, columns) compared in ``changes="local"``.
LOCAL_GRID = (4, 6)
#: Gaussian sigmas (thumbnail pixels) of the band-pass applied before
#: comparing. Subtracting the coarse blur removes the overall light-to-dark
#: layout (without it, different pictures correlate at 0.6-0.7; with it, at
#: most ~0.3); the fine blur makes the score forgiving of the sub-pixel zoom
#: and shift left between the tried factors (small stars, fine texture).
BAND_PASS_SIGMAS = (1.0, 8.0)
#: Extra blur (thumbnail pixels) before the directional check.
DERIVATIVE_SIGMA = 1.5

_FLAT_STD = 2.0  # grey levels: below this a thumbnail is a flat field
_FLAT_MEAN_DIFF = 12.0  # two flat fields closer than this are the same


def make_thumbnail(image: Image.Image) -> np.ndarray:
    """Grey thumbnail of a normalised image.

    Parameters
    ----------
    image : PIL.Image.Image
        An image as prepared for hashing
        (:func:`~napari_video_extract.core.hashing.load_image`).

    Returns
    -------
    ndarray of uint8, shape THUMB_SHAPE
        Resized without keeping the aspect ratio (both images of a pair are
        stretched alike, so the comparison is unaffected).
    """
    grey = image if image.mode == "L" else image.convert("L")
    h, w = THUMB_SHAPE
    return np.asarray(grey.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    # scipy's separable filter, not a matrix product: BLAS threads on such
    # small arrays cost more than the work (tens of times more on a busy machine).
    # Imported here: hashing workers import this module for make_thumbnail only.
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, sigma, mode="nearest", truncate=3.0)


def _band_pass(thumb: np.ndarray) -> np.ndarray:
    image = np.asarray(thumb, dtype=np.float64)
    fine, coarse = BAND_PASS_SIGMAS
    return _blur(image, fine) - _blur(image, coarse)


def _template_shape() -> tuple[int, int]:
    h, w = THUMB_SHAPE
    return round(h * (1 - 2 * MARGIN)), round(w * (1 - 2 * MARGIN))


class _Search:
    """The side searched over: FFT and window norms of one thumbnail."""

    __slots__ = ("fft", "flat", "image", "mean", "norm")

    def __init__(self, thumb: np.ndarray) -> None:
        raw = np.asarray(thumb)
        self.mean = float(raw.mean())
        self.flat = float(raw.std()) < _FLAT_STD
        image = _band_pass(raw)
        self.image = image
        self.fft = np.fft.rfft2(image).astype(np.complex64)
        th, tw = _template_shape()
        # Sum and sum of squares of every (th, tw) window, by integral images.
        s1 = np.pad(image.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        s2 = np.pad((image * image).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

        def windows(s):
            return s[th:, tw:] - s[:-th, tw:] - s[th:, :-tw] + s[:-th, :-tw]

        n = th * tw
        w1, w2 = windows(s1), windows(s2)
        var = np.maximum(w2 - w1 * w1 / n, 0.0)
        # A flat window correlates with nothing: its score stays 0.
        self.norm = np.where(var > n * 0.25, np.sqrt(var), np.inf)


class _Templates:
    """The side that moves: its centre zoomed by every factor of ZOOMS."""

    __slots__ = ("conj_fft", "flat", "mean", "patches")

    def __init__(self, thumb: np.ndarray) -> None:
        h, w = THUMB_SHAPE
        th, tw = _template_shape()
        raw = np.asarray(thumb)
        self.mean = float(raw.mean())
        self.flat = float(raw.std()) < _FLAT_STD
        image = Image.fromarray(_band_pass(raw).astype(np.float32), "F")
        patches = np.empty((len(ZOOMS), th, tw), dtype=np.float64)
        for k, z in enumerate(ZOOMS):
            bh, bw = th / z, tw / z
            box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
            patch = image.resize((tw, th), Image.Resampling.BILINEAR, box=box)
            patches[k] = np.asarray(patch, dtype=np.float64)
        patches -= patches.mean(axis=(1, 2), keepdims=True)
        norms = np.sqrt((patches * patches).sum(axis=(1, 2), keepdims=True))
        patches /= np.where(norms > 0, norms, np.inf)
        self.patches = patches.astype(np.float32)
        padded = np.zeros((len(ZOOMS), h, w), dtype=np.float64)
        padded[:, :th, :tw] = patches
        # complex64 halves the memory of the prepared items (~0.5 MB each).
        self.conj_fft = np.conj(np.fft.rfft2(padded)).astype(np.complex64)


def _flat_score(search: _Search, moving: _Templates) -> float | None:
    if search.flat or moving.flat:
        if search.flat and moving.flat:
            return 1.0 if abs(search.mean - moving.mean) <= _FLAT_MEAN_DIFF else 0.0
        return 0.0
    return None


def _score(search: _Search, moving: _Templates, changes: str) -> float:
    flat = _flat_score(search, moving)
    if flat is not None:
        return flat
    h, w = THUMB_SHAPE
    th, tw = _template_shape()
    corr = np.fft.irfft2(moving.conj_fft * search.fft[None], s=(h, w))
    ncc = corr[:, : h - th + 1, : w - tw + 1] / search.norm[None]
    best = int(np.argmax(ncc))
    k, rest = divmod(best, ncc.shape[1] * ncc.shape[2])
    dy, dx = divmod(rest, ncc.shape[2])
    score = float(ncc[k, dy, dx])
    window = search.image[dy : dy + th, dx : dx + tw]
    patch = moving.patches[k]
    score = min(score, _directional_score(window, patch))
    if changes == "global":
        return score
    return min(score, _local_score(window, patch))


def _directional_score(window: np.ndarray, patch: np.ndarray) -> float:
    """Lower NCC of the vertical and of the horizontal derivatives, aligned.

    Lines of text, stripes and rows of bricks correlate well at many shifts
    although the pictures differ (two pages of text: 0.9); their derivative
    across the lines does too, but the one along them (word gaps, joints)
    does not. A light blur keeps the derivatives forgiving of sub-pixel offsets.
    """
    a = _blur(window, DERIVATIVE_SIGMA)
    b = _blur(patch, DERIVATIVE_SIGMA)
    return min(
        _ncc(np.diff(a, axis=0), np.diff(b, axis=0)), _ncc(np.diff(a, axis=1), np.diff(b, axis=1))
    )


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else 0.0


def _local_score(window: np.ndarray, patch: np.ndarray) -> float:
    """Lowest per-block ``1 - mean((a - b)^2) / 2`` of the normalised pair.

    Over the whole picture this is exactly the NCC; per block it drops where
    one picture has something the other has not.
    """
    th, tw = patch.shape
    a = (window - window.mean()) / max(float(window.std()), 1e-9)
    b = patch / max(float(patch.std()), 1e-12)  # patch is zero-mean already
    sq = (a - b) ** 2
    rows, cols = LOCAL_GRID
    ys = np.linspace(0, th, rows + 1).round().astype(int)
    xs = np.linspace(0, tw, cols + 1).round().astype(int)
    worst = 1.0
    for r in range(rows):
        for c in range(cols):
            block = sq[ys[r] : ys[r + 1], xs[c] : xs[c + 1]]
            worst = min(worst, 1.0 - float(block.mean()) / 2.0)
    return worst


def similarity(kept: np.ndarray, other: np.ndarray, *, changes: str = "global") -> float:
    """Aligned similarity of two thumbnails.

    Parameters
    ----------
    kept : ndarray of uint8, shape THUMB_SHAPE
        Thumbnail searched over (the kept image of a cluster).
    other : ndarray of uint8, shape THUMB_SHAPE
        Thumbnail whose centre is zoomed and shifted over ``kept``.
    changes : {"global", "local"}, optional
        ``global``: best NCC over the shifts and zooms; ``local``: the lowest
        block score at that alignment, if lower.

    Returns
    -------
    float
        In [-1, 1]; two flat fields score 1 when their grey levels are close,
        a flat field and a picture 0.

    Raises
    ------
    ValueError
        Wrong thumbnail shape or unknown ``changes``.
    """
    check_changes(changes)
    for thumb in (kept, other):
        if np.shape(thumb) != THUMB_SHAPE:
            raise ValueError(f"expected a thumbnail of shape {THUMB_SHAPE}, got {np.shape(thumb)}")
    return _score(_Search(kept), _Templates(other), changes)


class Verifier:
    """Similarity of pairs among a stack of thumbnails, caching per-image work.

    ``score(i, j)`` searches image ``j``'s zoomed centre over image ``i``
    (``i`` is the kept image). The FFTs of the most recently used images are
    kept (``cache_size`` of each side), so checking many candidates against
    a few kept images costs one inverse FFT per zoom and pair.

    Parameters
    ----------
    thumbnails : ndarray of uint8, shape (N, *THUMB_SHAPE)
        One thumbnail per item (a memory map is fine: rows are read on use).
    changes : {"global", "local"}, optional
        See :func:`similarity`.
    cache_size : int, optional
        Kept images whose prepared FFTs are kept (~0.1 MB each).
    moving_cache_size : int, optional
        Other images whose zoomed FFTs are kept (~0.5 MB each).
    """

    def __init__(
        self,
        thumbnails: np.ndarray,
        *,
        changes: str = "global",
        cache_size: int = 256,
        moving_cache_size: int = 160,
    ) -> None:
        check_changes(changes)
        if thumbnails.ndim != 3 or thumbnails.shape[1:] != THUMB_SHAPE:
            raise ValueError(
                f"thumbnails must have shape (N, {THUMB_SHAPE[0]}, {THUMB_SHAPE[1]}), "
                f"got {thumbnails.shape}"
            )
        self.thumbnails = thumbnails
        self.changes = changes
        self.cache_size = int(cache_size)
        self.moving_cache_size = int(moving_cache_size)
        self.n_scored = 0
        self._search: OrderedDict[int, _Search] = OrderedDict()
        self._moving: OrderedDict[int, _Templates] = OrderedDict()

    def _get(self, cache: OrderedDict, kind, i: int, size: int):
        value = cache.get(i)
        if value is None:
            value = kind(self.thumbnails[i])
            cache[i] = value
            if len(cache) > size:
                cache.popitem(last=False)
        else:
            cache.move_to_end(i)
        return value

    def prepare(self, items: list[int], *, pool=None) -> None:
        """Compute the moving side of ``items`` ahead of use (in ``pool``'s threads)."""
        todo = [i for i in items if i not in self._moving][: self.moving_cache_size]
        if not todo:
            return
        thumbs = [self.thumbnails[i] for i in todo]
        made = pool.map(_Templates, thumbs) if pool is not None else map(_Templates, thumbs)
        for i, value in zip(todo, made, strict=True):
            self._moving[i] = value
            if len(self._moving) > self.moving_cache_size:
                self._moving.popitem(last=False)

    def score(self, kept: int, other: int) -> float:
        """Similarity of item ``other`` to item ``kept`` (see :func:`similarity`)."""
        self.n_scored += 1
        if kept == other:
            return 1.0
        search = self._get(self._search, _Search, int(kept), self.cache_size)
        moving = self._get(self._moving, _Templates, int(other), self.moving_cache_size)
        return _score(search, moving, self.changes)

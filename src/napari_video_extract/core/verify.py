"""Aligned comparison of two stills: does a hash candidate really show the same view?

A perceptual hash proposes candidate pairs; this module decides. Each image is
reduced once, in the hashing pass, to a small grey **thumbnail**
(:data:`THUMB_SHAPE`, made by :func:`make_thumbnail` from the same normalised
image the hash is computed from: EXIF orientation applied, borders cropped).
Both are band-passed (:data:`BAND_PASS_SIGMAS`: the overall light-to-dark
layout and pixel noise removed), then compared by the best **normalised
cross-correlation** (NCC) of the central part of the kept one (:data:`MARGIN`
cropped on every side), zoomed by each of :data:`ZOOMS`, against every
placement in the other. The best placement is found from the low
frequencies of the correlation and a bound on the rest, with the NCC computed
directly at the few placements the bound leaves, or when it leaves too many by
one inverse FFT over all shifts and zooms: the same placement either way
(:mod:`~napari_video_extract.core.placement`). At the best alignment
the NCC of the vertical and of the horizontal derivatives must agree too (the
lowest of the three is the score), so lines of text or stripes that match
along one direction only do not count as the same picture. A periodic
picture (a fine calibration target) correlates almost as well a period off
as at the right alignment, and the best NCC may be at the wrong one, where
the derivatives disagree: when they cost more than :data:`PLACEMENT_TIE` at
the best placement, the other local peaks of the NCC at its zoom within
:data:`PLACEMENT_TIE` of it (up to :data:`MAX_TIES`) are checked too, and
the score is the best of those minima. The result is in
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

import math
from collections import OrderedDict

import numpy as np
from PIL import Image

from napari_video_extract.core.comparison_sides import (
    BAND_PASS_SIGMAS,
    DERIVATIVE_SIGMA,
    MARGIN,
    THUMB_SHAPE,
    ZOOMS,
)
from napari_video_extract.core.comparison_sides import Searched as _Searched
from napari_video_extract.core.comparison_sides import Templates as _Templates
from napari_video_extract.core.comparison_sides import fft as _fft
from napari_video_extract.core.comparison_sides import nbytes as _nbytes
from napari_video_extract.core.comparison_sides import searched as _searched
from napari_video_extract.core.comparison_sides import template_shape as _template_shape
from napari_video_extract.core.dedup_settings import (
    CHANGES,
    DEFAULT_MIN_SIMILARITY,
    check_changes,
    default_min_similarity,
)
from napari_video_extract.core.memory_release import release_pages
from napari_video_extract.core.placement import PlacementSearch, peaks_among, placement_search

__all__ = [
    "BAND_PASS_SIGMAS",
    "CHANGES",
    "DEFAULT_MIN_SIMILARITY",
    "DERIVATIVE_SIGMA",
    "LOCAL_GRID",
    "MARGIN",
    "MAX_TIES",
    "PLACEMENT_TIE",
    "THUMB_SHAPE",
    "ZOOMS",
    "Verifier",
    "check_changes",
    "default_min_similarity",
    "make_thumbnail",
    "similarity",
]

#: Blocks (rows, columns) compared in ``changes="local"``.
LOCAL_GRID = (4, 6)

_FLAT_MEAN_DIFF = 12.0  # two flat fields closer than this are the same

#: NCC within which another alignment ties with the best one: when the
#: derivatives' check costs more than this at the best placement, the other
#: local peaks of the NCC at its zoom within it are checked too, and the
#: best agreement counts (see :func:`similarity`).
PLACEMENT_TIE = 0.03
#: Tied alignments checked at most (highest NCC first).
MAX_TIES = 4


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


def _flat_score(search: _Searched, moving: _Templates) -> float | None:
    if search.flat or moving.flat:
        if search.flat and moving.flat:
            return 1.0 if abs(search.mean - moving.mean) <= _FLAT_MEAN_DIFF else 0.0
        return 0.0
    return None


def _placement(search: _Searched, moving: _Templates) -> PlacementSearch:
    """:func:`~napari_video_extract.core.placement.placement_search` of one pair."""
    return placement_search(
        search.image,
        search.norm,
        search.low,
        search.high,
        moving.patches,
        moving.conj_low,
        moving.high,
    )


def _score(search: _Searched, moving: _Templates, changes: str) -> float:
    flat = _flat_score(search, moving)
    if flat is not None:
        return flat
    placed = _placement(search, moving)
    found, full = placed.best, None
    if found is None:  # the bound left too many candidates: the full search
        full = _correlations(search, moving) / search.norm
        best = int(np.argmax(full))
        k, rest = divmod(best, full.shape[1] * full.shape[2])
        dy, dx = divmod(rest, full.shape[2])
        found = k, dy, dx, float(full[k, dy, dx])
    k, dy, dx, best_ncc = found
    score = min(best_ncc, _directional_score(search, moving, k, dy, dx))
    if score < best_ncc - PLACEMENT_TIE:
        # The derivatives disagree where the NCC is best: on a periodic
        # picture that may be an alignment a period off, as good to the NCC
        # as the right one (a fine checkerboard: 0.957 at a wrong shift,
        # derivatives 0.66; 0.953 at the right one, derivatives 0.87).
        if full is None:
            ties = placed.near_ties(PLACEMENT_TIE, MAX_TIES)
        else:
            ties = _full_search_ties(full, found)
        for tk, tdy, tdx, tie_ncc in ties:
            if tie_ncc <= score:
                break
            tied = min(tie_ncc, _directional_score(search, moving, tk, tdy, tdx))
            if tied > score:
                score, k, dy, dx = tied, tk, tdy, tdx
    if changes == "global":
        return score
    th, tw = _template_shape()
    window = search.image[dy : dy + th, dx : dx + tw]
    return min(score, _local_score(window, moving.patches[k]))


def _full_search_ties(full: np.ndarray, found) -> list[tuple[int, int, int, float]]:
    """:meth:`~napari_video_extract.core.placement.PlacementSearch.near_ties` from every NCC."""
    k, dy0, dx0, best_ncc = found
    reach = full[k] >= best_ncc - PLACEMENT_TIE
    reach[max(dy0 - 1, 0) : dy0 + 2, max(dx0 - 1, 0) : dx0 + 2] = False  # the same alignment
    nx = full.shape[2]
    flat = peaks_among(full[k], reach, MAX_TIES).tolist()
    return [(k, *divmod(f, nx), float(full[k].ravel()[f])) for f in flat]


def _correlations(search: _Searched, moving: _Templates) -> np.ndarray:
    """Correlation of each zoomed template with every placement in the search image.

    The inverse of ``irfft2`` in its two passes (pocketfft's own order), the
    second only over the rows that are placements: the other rows of the
    circular correlation wrap around and are never used.
    """
    fft = _fft()
    h, w = THUMB_SHAPE
    th, tw = _template_shape()
    spectrum = fft.rfft2(search.image)  # as in the search side's batch, not kept
    rows = fft.ifft(moving.conj_spectra() * spectrum, axis=1, overwrite_x=True)
    return fft.irfft(rows[:, : h - th + 1], n=w, axis=2)[:, :, : w - tw + 1]


def _directional_score(search: _Searched, moving: _Templates, k: int, dy: int, dx: int) -> float:
    """Lower NCC of the vertical and of the horizontal derivatives, aligned.

    Lines of text, stripes and rows of bricks correlate well at many shifts
    although the pictures differ (two pages of text: 0.9); their derivative
    across the lines does too, but the one along them (word gaps, joints)
    does not. A light blur keeps the derivatives forgiving of sub-pixel offsets.
    """
    th, tw = _template_shape()
    # Contiguous copies of the windows: flat, their sums are BLAS dot products.
    gy = np.ascontiguousarray(search.grad_y[dy : dy + th - 1, dx : dx + tw])
    gx = np.ascontiguousarray(search.grad_x[dy : dy + th, dx : dx + tw - 1])
    grad_y, grad_x = moving.grads(k)
    return min(_ncc_unit(gy, grad_y), _ncc_unit(gx, grad_x))


def _ncc_unit(a: np.ndarray, unit: np.ndarray) -> float:
    """NCC of ``a`` with ``unit``, a zero-mean, unit-norm array of the same shape.

    ``unit`` sums to 0, so ``a``'s mean drops out of the numerator; the
    denominator is ``a``'s deviation norm from its sums (no temporary arrays).
    Both contiguous: ``np.dot`` of the flat arrays (a BLAS call) costs less
    than ``einsum``'s dispatch at this size (~6,000 values).
    """
    flat = a.ravel()
    total = float(flat.sum())
    squares = float(np.dot(flat, flat)) - total * total / flat.size
    if squares <= 0:
        return 0.0
    return float(np.dot(flat, unit.ravel())) / math.sqrt(squares)


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
    sums = np.add.reduceat(np.add.reduceat(sq, ys[:-1], axis=0), xs[:-1], axis=1)
    means = sums / np.outer(np.diff(ys), np.diff(xs))
    return min(1.0, 1.0 - float(means.max()) / 2.0)


def similarity(kept: np.ndarray, other: np.ndarray, *, changes: str = "global") -> float:
    """Aligned similarity of two thumbnails.

    Parameters
    ----------
    kept : ndarray of uint8, shape THUMB_SHAPE
        Thumbnail whose centre is zoomed and shifted over ``other`` (the kept
        image of a cluster: its zoomed templates are made once per cluster).
    other : ndarray of uint8, shape THUMB_SHAPE
        Thumbnail searched over.
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
    return _score(_searched(other)[0], _Templates(kept), changes)


def _grad_bytes() -> int:
    th, tw = _template_shape()
    return 4 * ((th - 1) * tw + th * (tw - 1))


#: Bytes of one zoom's derivative templates (float32), made on a pair's first use of it.
_GRAD_BYTES = _grad_bytes()


class Verifier:
    """Similarity of pairs among a stack of thumbnails, caching per-image work.

    ``score(i, j)`` searches image ``i``'s zoomed centre (``i`` is the kept
    image) over image ``j``. Each image's search side (band-passed image,
    window norms, low-frequency spectrum, derivatives; see
    :mod:`~napari_video_extract.core.comparison_sides`) is made once, a block of
    images at a time (:meth:`searched` + :meth:`add_searched`, or
    :meth:`prepare`); each kept image's zoomed templates once, on first use.
    A pair then costs two small matrix products over the low frequencies
    of all zooms, the NCC at a few placements (rarely an inverse FFT over all
    zooms instead, see :mod:`~napari_video_extract.core.placement`) and two
    small dot products for the directional check (its templates are made
    per zoom, on the first pair aligned at it).

    Parameters
    ----------
    thumbnails : ndarray of uint8, shape (N, *THUMB_SHAPE)
        One thumbnail per item (a memory map is fine: rows are read on use).
    changes : {"global", "local"}, optional
        See :func:`similarity`.
    cache_bytes : int, optional
        Memory for the kept images' templates (~0.45 MB each, plus ~47 KB
        per zoom a pair was aligned at), least recently used dropped first.
        Hash candidates jump between the kept images of a long video (at
        20,000 stills, 462 kept images): 64 MB made each ~3 times on average,
        192 MB (~400 of them) ~1.03 times (475 templates made).
    search_cache_bytes : int, optional
        Memory for the search sides kept (~0.12 MB each; always at least the
        last block added).

    Notes
    -----
    The caches only save work: an entry dropped is made again, equal to the
    bit, so the cache sizes never change a score. :meth:`clear` empties them
    (a finished clustering calls it: a later one makes what it needs again).
    """

    def __init__(
        self,
        thumbnails: np.ndarray,
        *,
        changes: str = "global",
        cache_bytes: int = 192 << 20,
        search_cache_bytes: int = 40 << 20,
    ) -> None:
        check_changes(changes)
        if thumbnails.ndim != 3 or thumbnails.shape[1:] != THUMB_SHAPE:
            raise ValueError(
                f"thumbnails must have shape (N, {THUMB_SHAPE[0]}, {THUMB_SHAPE[1]}), "
                f"got {thumbnails.shape}"
            )
        self.thumbnails = thumbnails
        self.changes = changes
        self.cache_bytes = int(cache_bytes)
        self.search_cache_bytes = int(search_cache_bytes)
        self.n_scored = 0
        self._search: OrderedDict[int, _Searched] = OrderedDict()
        self._templates: OrderedDict[int, _Templates] = OrderedDict()
        self._search_bytes = 0
        self._template_bytes = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes held by both caches now."""
        return self._search_bytes + self._template_bytes

    def clear(self) -> None:
        """Drop every cached search side and template (they are made again on use)."""
        self._search.clear()
        self._templates.clear()
        self._search_bytes = self._template_bytes = 0

    def release_pages(self) -> None:
        """Let the OS drop the pages of memory-mapped thumbnails read so far.

        Rows are read again from the file when needed; without this, a run
        over a 100,000-still memory map would end with all of it (920 MB)
        resident. Nothing happens for thumbnails in memory.
        """
        release_pages(self.thumbnails)

    def searched(self, items: list[int]) -> list[_Searched]:
        """The search side of ``items`` (no cache touched: safe in another thread)."""
        if not items:
            return []
        return _searched(np.asarray(self.thumbnails[np.asarray(items, dtype=np.int64)]))

    def add_searched(self, items: list[int], values: list[_Searched]) -> None:
        """Keep the search sides made by :meth:`searched`."""
        for i, value in zip(items, values, strict=True):
            old = self._search.pop(int(i), None)
            if old is not None:
                self._search_bytes -= _nbytes(old)
            self._search[int(i)] = value
            self._search_bytes += _nbytes(value)
        while self._search_bytes > self.search_cache_bytes and len(self._search) > len(items):
            self._search_bytes -= _nbytes(self._search.popitem(last=False)[1])

    def prepare(self, items: list[int]) -> None:
        """Make the search side of the ``items`` not cached yet, all at once."""
        todo = [int(i) for i in items if int(i) not in self._search]
        self.add_searched(todo, self.searched(todo))

    def _searched_one(self, i: int) -> _Searched:
        value = self._search.get(i)
        if value is None:
            self.prepare([i])
            return self._search[i]
        self._search.move_to_end(i)
        return value

    def _template(self, i: int) -> _Templates:
        value = self._templates.get(i)
        if value is None:
            search = self._search.get(i)
            if search is None:
                value = _Templates(self.thumbnails[i])
            else:  # its band-passed image is made already
                value = _Templates(self.thumbnails[i], search.image)
            self._templates[i] = value
            self._template_bytes += _nbytes(value)
            self._trim_templates()
        else:
            self._templates.move_to_end(i)
        return value

    def _trim_templates(self) -> None:
        while self._template_bytes > self.cache_bytes and len(self._templates) > 1:
            self._template_bytes -= _nbytes(self._templates.popitem(last=False)[1])

    def score(self, kept: int, other: int) -> float:
        """Similarity of item ``other`` to item ``kept`` (see :func:`similarity`)."""
        self.n_scored += 1
        if kept == other:
            return 1.0
        moving = self._template(int(kept))
        search = self._searched_one(int(other))
        n_zooms = len(moving.grad_cache)
        value = _score(search, moving, self.changes)
        added = len(moving.grad_cache) - n_zooms  # derivative templates of a new zoom
        if added:
            self._template_bytes += added * _GRAD_BYTES
            self._trim_templates()
        return value

"""The best placement of a zoomed template, found without the full correlation.

:mod:`~napari_video_extract.core.verify` scores a pair at the placement
(zoom, vertical shift, horizontal shift) of highest normalised
cross-correlation (NCC). Computing the NCC at every placement takes an inverse
FFT of every zoom's whole spectrum, most of a pair's cost. The band-passed
images have little energy at high frequencies, so the correlation from the
low frequencies alone (:data:`LOW_BAND`, evaluated at the placements only by
two small matrix products) is close to the full one, and the rest is bounded:
by Parseval and Cauchy-Schwarz, the high frequencies add at most
``|T_high| |S_high| / (H W)`` to the correlation at any placement, where
``T_high`` and ``S_high`` are the template's and the image's spectra outside
the band (their norms are computed once per image). So only the placements
whose upper bound reaches the best lower bound can be the best one (on the
stills of ``benchmarks/_work/dedup_stills``: 3 in the median, 7 at the 90th
percentile, of 3,645); their NCC is computed directly and the highest taken.
When more than :data:`MAX_CANDIDATES` remain, :func:`best_placement` says so
and the caller runs the full search: the best placement is always the full
search's (up to float rounding, ~1e-6). The near ties below are not quite:
here they are picked by the low-frequency estimate (at most ``limit`` get
their NCC computed), in the full search from every NCC, so in a rare
periodic picture with more ties than that, which of them the derivative
check tries can depend on which search ran (deterministic per pair either way).

A periodic picture (a calibration target, a tiled wall) correlates almost
equally well at several placements a period apart, and the best NCC may be
at a wrong one by a hair: :func:`placement_search` also gives the other
local peaks within a tie of the best (:meth:`PlacementSearch.near_ties`),
so the caller can check them too (see
:mod:`~napari_video_extract.core.verify`).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "LOW_BAND",
    "MAX_CANDIDATES",
    "PlacementSearch",
    "best_placement",
    "high_norm",
    "low_block",
    "peaks_among",
    "placement_search",
]

#: Largest |vertical| and horizontal frequency (cycles per thumbnail) kept
#: in the low-frequency correlation. Wider costs more per pair, narrower
#: leaves more candidate placements (looser bound).
LOW_BAND = (24, 43)
#: Candidate placements checked directly; more and the full search runs.
MAX_CANDIDATES = 32
# Float32 rounding of the low-frequency correlation, in NCC units: far
# above its error (~1e-6), far below the gaps the bound works with.
_ROUNDING = 1e-4


def _rows(h: int) -> np.ndarray:
    ky = LOW_BAND[0]
    return np.r_[0 : ky + 1, h - ky : h]


def low_block(spectra: np.ndarray) -> np.ndarray:
    """The low-frequency block of ``rfft2`` spectra ``(..., H, W // 2 + 1)``, contiguous."""
    h = spectra.shape[-2]
    return np.ascontiguousarray(spectra[..., _rows(h), : LOW_BAND[1] + 1])


def high_norm(spectra: np.ndarray, width: int) -> np.ndarray:
    """Norm of the full 2-D spectrum outside the block, from ``rfft2`` spectra.

    Columns 1 to ``width // 2 - 1`` of the half spectrum stand for two
    columns of the full one (their mirror images are conjugates).
    """
    h, half = spectra.shape[-2:]
    weight = np.full(half, 2.0, dtype=np.float32)
    weight[0] = 1.0
    if width % 2 == 0:
        weight[-1] = 1.0
    # float32 is plenty: its relative error (~1e-6) is far inside _ROUNDING.
    energy = (spectra.real**2 + spectra.imag**2) * weight
    energy[..., _rows(h), : LOW_BAND[1] + 1] = 0.0
    return np.sqrt(energy.sum(axis=(-2, -1), dtype=np.float64))


@functools.lru_cache(maxsize=4)
def _inverse_matrices(h: int, w: int, ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows @ block).view(float32) @ cols``: the inverse DFT of a block at the placements."""
    fy = np.where(_rows(h) > h // 2, _rows(h) - h, _rows(h))
    rows = np.exp(2j * np.pi * np.outer(np.arange(ny), fy) / h).astype(np.complex64)
    fx = np.arange(LOW_BAND[1] + 1)
    weight = np.where((fx == 0) | (2 * fx == w), 1.0, 2.0) / (h * w)
    phase = np.exp(2j * np.pi * np.outer(fx, np.arange(nx)) / w) * weight[:, None]
    cols = np.empty((2 * len(fx), nx), dtype=np.float32)
    cols[0::2], cols[1::2] = phase.real, -phase.imag  # re(a b) = re a re b - im a im b
    return rows, cols


def best_placement(
    image: np.ndarray,
    norms: np.ndarray,
    image_block: np.ndarray,
    image_high: float,
    patches: np.ndarray,
    conj_blocks: np.ndarray,
    patch_highs: np.ndarray,
) -> tuple[int, int, int, float] | None:
    """The placement of highest NCC, or None when the bound leaves too many.

    Parameters
    ----------
    image : ndarray of float32, shape (H, W)
        The band-passed image searched over.
    norms : ndarray of float32, shape (NY, NX)
        Deviation norm of the window at every placement (inf: flat window,
        NCC 0).
    image_block, image_high
        :func:`low_block` and :func:`high_norm` of ``image``'s ``rfft2``.
    patches : ndarray of float32, shape (Z, TH, TW)
        Zero-mean, unit-norm templates.
    conj_blocks : ndarray of complex64, shape (Z, BY, BX)
        :func:`low_block` of the conjugated ``rfft2`` of the templates
        zero-padded to (H, W).
    patch_highs : ndarray, shape (Z,)
        :func:`high_norm` of those spectra.

    Returns
    -------
    (zoom, dy, dx, ncc) or None
        Ties go to the first placement in (zoom, dy, dx) order, as ``argmax``.
    """
    return placement_search(
        image, norms, image_block, image_high, patches, conj_blocks, patch_highs
    ).best


class PlacementSearch:
    """The bounded search of one pair: its best placement and the bounds behind it.

    Made by :func:`placement_search`. ``best`` is what :func:`best_placement`
    returns; :meth:`near_ties` reuses the search's bounds (no further
    correlation over all placements).
    """

    __slots__ = ("best", "image", "low", "norms", "patches", "upper")

    def __init__(self, best, low, upper, image, norms, patches) -> None:
        self.best = best
        self.low, self.upper = low, upper
        self.image, self.norms, self.patches = image, norms, patches

    def ncc(self, k: int, dy: int, dx: int) -> float:
        """The NCC at one placement, computed directly."""
        th, tw = self.patches.shape[1:]
        window = self.image[dy : dy + th, dx : dx + tw]
        return float(np.einsum("ij,ij->", window, self.patches[k])) / float(self.norms[dy, dx])

    def near_ties(self, tie: float, limit: int) -> list[tuple[int, int, int, float]]:
        """Other local peaks of the NCC at the best zoom within ``tie`` of the best, highest first.

        Peaks are found on the low-frequency estimate (a placement no lower
        than its 8 neighbours, see :func:`peaks_among`), more than a pixel
        from the best; of those whose upper bound reaches ``best - tie``,
        the ``limit`` of highest estimate get their NCC computed directly,
        and those within ``tie`` of the best are returned, as (zoom, dy,
        dx, ncc). Only the best zoom: a
        period off is a shift, and the other zooms' derivative templates
        would have to be made. Empty when there is no best placement (the
        caller ran the full search).
        """
        if self.best is None:
            return []
        k, dy0, dx0, best_ncc = self.best
        reach_far = self.upper[k] >= best_ncc - tie
        reach_far[max(dy0 - 1, 0) : dy0 + 2, max(dx0 - 1, 0) : dx0 + 2] = False
        if not reach_far.any():  # most pairs: only the best's neighbours reach it
            return []
        estimate = self.low[k] / self.norms  # the NCC of the low frequencies
        nx = estimate.shape[1]
        out = []
        for f in peaks_among(estimate, reach_far, limit).tolist():
            dy, dx = divmod(f, nx)
            ncc = self.ncc(k, dy, dx)
            if ncc >= best_ncc - tie:
                out.append((k, dy, dx, ncc))
        out.sort(key=lambda t: -t[3])  # stable: equal NCCs keep (dy, dx) order
        return out


_NEIGHBOURS = np.array([(oy, ox) for oy in (-1, 0, 1) for ox in (-1, 0, 1) if oy or ox]).T


def peaks_among(values: np.ndarray, mask: np.ndarray, limit: int) -> np.ndarray:
    """Flat indices of the masked entries of a 2-D array no lower than their 8 neighbours.

    The ``limit`` highest, highest first (equal values in index order).
    Only the masked entries are looked at (a few of a pair's placements).
    """
    ys, xs = np.nonzero(mask)
    ny, nx = values.shape
    padded = np.full((ny + 2, nx + 2), -np.inf, dtype=values.dtype)
    padded[1:-1, 1:-1] = values
    centre = padded[ys + 1, xs + 1]
    around = padded[ys[:, None] + 1 + _NEIGHBOURS[0], xs[:, None] + 1 + _NEIGHBOURS[1]]
    peak = centre >= around.max(axis=1, initial=-np.inf)
    order = np.argsort(-centre[peak], kind="stable")[:limit]
    return (ys[peak] * nx + xs[peak])[order]


def placement_search(
    image: np.ndarray,
    norms: np.ndarray,
    image_block: np.ndarray,
    image_high: float,
    patches: np.ndarray,
    conj_blocks: np.ndarray,
    patch_highs: np.ndarray,
) -> PlacementSearch:
    """The bounded search of :func:`best_placement` (same parameters), kept.

    Returns
    -------
    PlacementSearch
        Its ``best`` is :func:`best_placement`'s answer; its bounds serve
        :meth:`~PlacementSearch.near_ties`.
    """
    h, w = image.shape
    ny, nx = norms.shape
    rows, cols = _inverse_matrices(h, w, ny, nx)
    # One small product per zoom (numpy's matmul loops over the stack): each
    # stays under OpenBLAS's threading threshold (threads on such sizes cost
    # far more than they save, worse on a busy machine).
    low = (rows @ (conj_blocks * image_block)).view(np.float32) @ cols
    slack = (patch_highs * (image_high / (h * w)))[:, None, None]
    lower = (low - slack) / norms - _ROUNDING
    upper = (low + slack) / norms + _ROUNDING
    candidates = np.flatnonzero(upper >= lower.max())
    search = PlacementSearch(None, low, upper, image, norms, patches)
    if len(candidates) > MAX_CANDIDATES:
        return search
    best, best_ncc = -1, -np.inf
    for flat in candidates.tolist():
        k, rest = divmod(flat, ny * nx)
        dy, dx = divmod(rest, nx)
        ncc = search.ncc(k, dy, dx)
        if ncc > best_ncc:
            best, best_ncc = flat, ncc
    k, rest = divmod(best, ny * nx)
    dy, dx = divmod(rest, nx)
    search.best = k, dy, dx, best_ncc
    return search

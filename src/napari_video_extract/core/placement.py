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
and the caller runs the full search: the answer is always the full search's
(up to float rounding, ~1e-6).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "LOW_BAND",
    "MAX_CANDIDATES",
    "best_placement",
    "high_norm",
    "low_block",
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
    h, w = image.shape
    ny, nx = norms.shape
    th, tw = patches.shape[1:]
    rows, cols = _inverse_matrices(h, w, ny, nx)
    # One small product per zoom (numpy's matmul loops over the stack): each
    # stays under OpenBLAS's threading threshold (threads on such sizes cost
    # far more than they save, worse on a busy machine).
    low = (rows @ (conj_blocks * image_block)).view(np.float32) @ cols
    slack = (patch_highs * (image_high / (h * w)))[:, None, None]
    lower = (low - slack) / norms - _ROUNDING
    upper = (low + slack) / norms + _ROUNDING
    candidates = np.flatnonzero(upper >= lower.max())
    if len(candidates) > MAX_CANDIDATES:
        return None
    best, best_ncc = -1, -np.inf
    for flat in candidates.tolist():
        k, rest = divmod(flat, ny * nx)
        dy, dx = divmod(rest, nx)
        window = image[dy : dy + th, dx : dx + tw]
        ncc = float(np.einsum("ij,ij->", window, patches[k])) / float(norms[dy, dx])
        if ncc > best_ncc:
            best, best_ncc = flat, ncc
    k, rest = divmod(best, ny * nx)
    dy, dx = divmod(rest, nx)
    return k, dy, dx, best_ncc

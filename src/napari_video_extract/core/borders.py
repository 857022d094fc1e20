"""Uniform borders (letterbox, pillarbox, flat frames) found and cropped before hashing.

Black bars dominate a hash of 64 bits, so the hash (and the verification
thumbnail) are computed from the picture inside them.
:func:`find_border_box` says where the picture is (a :class:`BorderBox`),
:func:`crop_to_box` crops to a box: stills of one video share one box
(:mod:`~napari_video_extract.core.crop_consensus`), since bars belong to a
video, not to a frame.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from PIL import Image

__all__ = ["BorderBox", "crop_to_box", "crop_uniform_borders", "find_border_box"]

_MIN_CROPPED_SIDE = 8


class BorderBox(NamedTuple):
    """The uniform bars around an image of ``width`` x ``height`` pixels.

    ``left``, ``top``, ``right``, ``bottom`` are the bars' thicknesses in
    pixels; ``blank`` marks an image that is uniform all over (nothing is
    cropped from it, and it says nothing about where a video's bars are).
    """

    width: int
    height: int
    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0
    blank: bool = False

    @property
    def margins(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)``."""
        return self.left, self.top, self.right, self.bottom


def crop_to_box(image: Image.Image, box: BorderBox) -> Image.Image:
    """``image`` without the bars of ``box`` (``image`` itself when there are none).

    Raises
    ------
    ValueError
        ``box`` is for an image of another size.
    """
    if (image.width, image.height) != (box.width, box.height):
        raise ValueError(
            f"border box for {box.width}x{box.height}, image is {image.width}x{image.height}"
        )
    if not any(box.margins):
        return image
    return image.crop((box.left, box.top, box.width - box.right, box.height - box.bottom))


def crop_uniform_borders(
    image: Image.Image, *, tolerance: float = 8.0, max_passes: int = 3
) -> Image.Image:
    """Crop uniform bars (letterbox, pillarbox, flat frames) around an image.

    A row (column) at an edge is a border when its pixels stay close to the
    colour of the outermost row (column): mean absolute deviation at most
    ``tolerance`` **and** at most a third of the picture's own (the mean
    absolute deviation of its central half), and no more than 1% of pixels off
    by more than 40 levels, so codec noise in black bars does not stop the
    crop. The relative limit keeps low-contrast pictures (a grey moon surface,
    fog) whole: there a flat-looking edge row is picture, and cropping it by
    an amount that varies with noise and framing would change the hash.
    Repeated up to
    ``max_passes`` times so that e.g. a black bar followed by a flat grey bar is
    cropped the same as the grey bar alone.

    Parameters
    ----------
    image : PIL.Image.Image
        An ``L`` or ``RGB`` image.
    tolerance : float, optional
        Largest mean absolute deviation (0-255 scale) of a border row.
    max_passes : int, optional
        Number of crop passes.

    Returns
    -------
    PIL.Image.Image
        The cropped image, or ``image`` itself when nothing is cropped or when
        cropping would leave fewer than 8 pixels a side (a blank image).
    """
    return crop_to_box(image, find_border_box(image, tolerance=tolerance, max_passes=max_passes))


def find_border_box(
    image: Image.Image, *, tolerance: float = 8.0, max_passes: int = 3
) -> BorderBox:
    """The bars :func:`crop_uniform_borders` crops from ``image``.

    Parameters
    ----------
    image : PIL.Image.Image
        An ``L`` or ``RGB`` image.
    tolerance, max_passes
        As for :func:`crop_uniform_borders`.

    Returns
    -------
    BorderBox
        ``blank`` when the first pass finds bars that would leave fewer than
        8 pixels a side (nothing is cropped then).
    """
    # Grey levels of the whole image once; each pass looks at the part left
    # by the previous ones (cropping commutes with the conversion to grey).
    gray = np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.int16)
    box_left, box_top = 0, 0
    blank = False
    for n_pass in range(max_passes):
        h, w = gray.shape
        if h < 2 * _MIN_CROPPED_SIDE or w < 2 * _MIN_CROPPED_SIDE:
            break
        # Most pictures have no border: the four edge lines, tested against
        # ``tolerance`` (never below the limit used next), usually settle it
        # without the rest of the work. Same result as testing every side.
        edges = _edges_uniform(gray, tolerance)
        if not edges.any():
            break
        core = gray[h // 4 : h - h // 4, w // 4 : w - w // 4]
        limit = min(tolerance, float(np.abs(core - core.mean()).mean()) / 3.0)
        # A side's bar is less than half the image (else too little is left).
        top = _border_run(gray[: h // 2], limit) if edges[0] else 0
        bottom = _border_run(gray[: h - h // 2 - 1 : -1], limit) if edges[1] else 0
        left = _border_run(gray[:, : w // 2].T, limit) if edges[2] else 0
        right = _border_run(gray[:, : w - w // 2 - 1 : -1].T, limit) if edges[3] else 0
        if top + bottom == 0 and left + right == 0:
            break
        if h - top - bottom < _MIN_CROPPED_SIDE or w - left - right < _MIN_CROPPED_SIDE:
            blank = n_pass == 0
            break
        gray = gray[top : h - bottom, left : w - right]
        box_left, box_top = box_left + left, box_top + top
    h, w = gray.shape
    return BorderBox(
        image.width,
        image.height,
        box_left,
        box_top,
        image.width - box_left - w,
        image.height - box_top - h,
        blank=blank,
    )


def _uniform_lines(
    lines: np.ndarray,
    doubled_reference: np.ndarray,
    tolerance: float,
    *,
    padding: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
):
    """Whether each line (row of ``lines``) is within ``tolerance`` of its reference.

    A line is uniform when its mean absolute deviation from the reference is
    at most ``tolerance`` and at most 1% of its pixels are off by more than
    40 levels. References are medians, so they are given doubled (whole
    numbers): twice each deviation is then a whole number, its sum exact, and
    ``sum / (2 n)`` is the mean numpy's ``mean`` of the half-integer
    deviations gives (one rounding, the division), without a float array.
    Lines of several lengths share one array with ``padding`` (a mask of the
    cells that are not pixels) and ``lengths`` (each line's pixel count).
    """
    n = lines.shape[1] if lengths is None else lengths
    doubled = np.abs(2 * lines - doubled_reference[:, None])  # pixels: at most 510
    if padding is not None:
        doubled[padding] = 0
    mean_deviation = doubled.sum(axis=1) / (2 * n)
    off = (doubled > 80).sum(axis=1) / n
    return (mean_deviation <= tolerance) & (off <= 0.01)


def _doubled_medians(lines: np.ndarray) -> np.ndarray:
    """Twice the median of each row of grey levels (``int16``), a whole number."""
    n = lines.shape[1]
    middle = np.partition(lines, [(n - 1) // 2, n // 2], axis=1)
    return middle[:, (n - 1) // 2] + middle[:, n // 2]


def _is_border(lines: np.ndarray, tolerance: float) -> np.ndarray:
    """Whether each line (row of ``lines``) is uniform: the test of :func:`_border_run`."""
    return _uniform_lines(lines, _doubled_medians(lines), tolerance)


@functools.lru_cache(maxsize=32)
def _edge_layout(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """How :func:`_edges_uniform` pads the four edge lines of an ``h`` x ``w`` image.

    The rows (``w`` pixels) and columns (``h``) share one array of ``max(h, w)``
    columns; the shorter lines are padded with as many values below 0 as above
    255, which leaves their middle values (the median) where they were. ``None``
    when ``h`` and ``w`` differ in parity (the padding cannot be balanced).
    """
    if (h - w) % 2:
        return None
    n = max(h, w)
    pad = np.zeros((4, n), dtype=bool)
    fill = np.zeros((4, n), dtype=np.int16)
    for line, size in enumerate((w, w, h, h)):
        extra = (n - size) // 2
        pad[line, size:] = True
        fill[line, size : size + extra] = -1000
        fill[line, size + extra :] = 1000
    lengths = np.array([w, w, h, h])
    for array in (pad, fill, lengths):
        array.flags.writeable = False
    return pad, fill, lengths


def _edges_uniform(gray: np.ndarray, tolerance: float) -> np.ndarray:
    """:func:`_is_border` of the top, bottom, left and right edge lines, in that order.

    The four lines go through one padded array (:func:`_edge_layout`): the
    same medians, whole-number deviations and means as four separate tests,
    in half the numpy calls.
    """
    h, w = gray.shape
    layout = _edge_layout(h, w)
    if layout is None:
        return np.concatenate(
            [_is_border(gray[[0, h - 1]], tolerance), _is_border(gray[:, [0, w - 1]].T, tolerance)]
        )
    pad, fill, lengths = layout
    lines = fill.copy()
    lines[:2, :w] = gray[[0, h - 1]]
    lines[2:, :h] = gray[:, [0, w - 1]].T
    return _uniform_lines(lines, _doubled_medians(lines), tolerance, padding=pad, lengths=lengths)


def _border_run(gray: np.ndarray, tolerance: float) -> int:
    """Number of leading rows of ``gray`` that are uniform and of the edge colour."""
    reference = _doubled_medians(gray[:1])
    is_border = _uniform_lines(gray, np.broadcast_to(reference, gray.shape[:1]), tolerance)
    if not is_border[0]:
        return 0
    not_border = np.flatnonzero(~is_border)
    return int(not_border[0]) if not_border.size else gray.shape[0]

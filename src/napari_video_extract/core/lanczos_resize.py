"""Pillow's Lanczos resize of an 8-bit grey image, pixel for pixel, as matrix products.

``phash`` shrinks each normalised image to 32x32 with
``Image.resize(..., LANCZOS)``, which computes the filter's weights again at
every call (two ``sin`` a tap) and sums about 30 taps a pixel in scalar
integer arithmetic: a tenth of the hashing worker's instructions. The same
arithmetic here, with weights cached per size and the sums done by BLAS:

* the weights are Pillow's (``precompute_coeffs`` and
  ``normalize_coeffs_8bpc`` in ``libImaging/Resample.c``: the same double
  operations in the same order, :func:`math.sin` being the C library's
  ``sin`` that Pillow calls), whole numbers with 22 fraction bits;
* a pass is a product of whole numbers held in ``float64`` whose sums stay
  below 2**31, so exact in any summation order, then Pillow's rounding
  (add 2**21, shift right by 22) and clipping to 0..255; the 8-bit result
  of the first pass feeds the second.

Pillow 13 runs the horizontal pass first or the vertical one depending on
the sizes, and the order changes the pixels where the filter overshoots.
Rather than hard-code a rule of one Pillow version, the order is learnt per
pair of sizes, once per process, when a size has been met
:data:`_LEARN_AFTER` times (Pillow resizes it until then, so sizes met
rarely cost nothing more): Pillow resizes two pseudo-random 0/255 images of
that size (where the two orders disagree), and an order is used only if it
reproduces both exactly and the other does not. Otherwise, and for sizes
past the bounds on how many are counted and learnt, Pillow itself resizes.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

__all__ = ["lanczos_resize"]

_PRECISION_BITS = 32 - 8 - 2  # Pillow's PRECISION_BITS
_HALF = float(1 << (_PRECISION_BITS - 1))
_SCALE = 1.0 / (1 << _PRECISION_BITS)
_CALIBRATION_IMAGES = 2
# Learning a size costs 3-20 ms, 20-100 of Pillow's resizes: only a size met
# this often is learnt; the others, and every size past the bounds below,
# are resized by Pillow (never learnt again and again).
_LEARN_AFTER = 8
_SIGHTINGS: dict[tuple[int, int, int, int], int] = {}
_MAX_SEEN = 4096  # sizes counted
_MAX_LEARNT = 64  # sizes learnt: two cached weight matrices each (_weights' bound)
_ORDERS: dict[tuple[int, int, int, int], bool | None] = {}


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@functools.lru_cache(maxsize=2 * _MAX_LEARNT)
def _weights(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's integer Lanczos weights, shape ``(in_size, out_size)``, as ``float64``."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    inv_filterscale = 1.0 / filterscale
    out = np.zeros((in_size, out_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [_lanczos((x + xmin - center + 0.5) * inv_filterscale) for x in range(xmax)]
        ww = 0.0
        for w in taps:
            ww += w
        for x, w in enumerate(taps):
            if ww != 0.0:
                w /= ww
            out[xmin + x, xx] = int((-0.5 if w < 0 else 0.5) + w * (1 << _PRECISION_BITS))
    out.flags.writeable = False
    return out


def _to_8bit(sums: np.ndarray) -> np.ndarray:
    # Pillow's clip8(2**21 + sum): shifted right by 22 bits, clipped to 0..255.
    return np.clip(np.floor((sums + _HALF) * _SCALE), 0.0, 255.0)


def _resize(pixels: np.ndarray, width: int, height: int, vertical_first: bool) -> np.ndarray:
    h, w = pixels.shape
    for vertical in (vertical_first, not vertical_first):
        if vertical and h != height:  # Pillow skips a pass that keeps the size
            pixels = _to_8bit(_weights(h, height).T @ pixels)
        elif not vertical and w != width:
            pixels = _to_8bit(pixels @ _weights(w, width))
    return pixels


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    """A pseudo-random 0/255 image (a hashed counter: no random-number module to import)."""
    x = np.arange(h * w, dtype=np.uint64) + np.uint64(seed << 40)
    x = x * np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64
    x ^= x >> np.uint64(29)
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    return ((x >> np.uint64(63)).astype(np.uint8) * 255).reshape(h, w)


def _pass_order(h: int, w: int, width: int, height: int) -> bool | None:
    """Whether Pillow resizes ``w`` x ``h`` to ``width`` x ``height`` vertically first.

    ``None`` when neither order reproduces Pillow on every calibration image,
    or both do although both passes are needed (no evidence of the order).
    """
    orders = {False, True}
    evidence = False
    for seed in range(_CALIBRATION_IMAGES):
        image = _noise(h, w, seed)
        pillow = np.asarray(
            Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS),
            dtype=np.float64,
        )
        pixels = image.astype(np.float64)
        matches = {o for o in orders if np.array_equal(_resize(pixels, width, height, o), pillow)}
        evidence = evidence or len(matches) == 1
        orders = matches
    if (w == width or h == height) and orders:  # one pass: the order does not matter
        return False
    return orders.pop() if len(orders) == 1 and evidence else None


def lanczos_resize(image: Image.Image, width: int, height: int) -> np.ndarray:
    """``np.asarray(image.resize((width, height), LANCZOS), dtype=np.float64)`` of an ``L`` image.

    Parameters
    ----------
    image : PIL.Image.Image
        An ``L`` image.
    width, height : int
        The output size.

    Returns
    -------
    ndarray of float64, shape (height, width)
        Grey levels, whole numbers 0..255: Pillow's pixels.
    """
    w, h = image.size
    shape = (h, w, width, height)
    if (w, h) == (width, height):
        vertical_first = False
    elif shape in _ORDERS:
        vertical_first = _ORDERS[shape]
    else:
        vertical_first = None
        seen = _SIGHTINGS.get(shape, 0)
        if seen or len(_SIGHTINGS) < _MAX_SEEN:
            _SIGHTINGS[shape] = seen + 1
            if seen + 1 >= _LEARN_AFTER and len(_ORDERS) < _MAX_LEARNT:
                vertical_first = _ORDERS[shape] = _pass_order(*shape)
    if vertical_first is None:
        small = image.resize((width, height), Image.Resampling.LANCZOS)
        return np.asarray(small, dtype=np.float64)
    return _resize(np.asarray(image, dtype=np.float64), width, height, vertical_first)

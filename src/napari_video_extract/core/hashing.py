"""Perceptual hashes of images and video frames, packed for fast Hamming distances.

A hash is a short bit string that changes little when an image changes little.
We compute it with :mod:`imagehash` (``phash``, ``dhash``, ``ahash``, ``whash``,
``colorhash``) after normalising the image the same way whatever its source:

* EXIF orientation applied (:func:`PIL.ImageOps.exif_transpose`);
* transparency composited onto a flat white background;
* any mode (``1``, ``L``, ``P``, ``CMYK``, ``I;16``, ``I``, ``F``, ``RGBA``...)
  converted to 8-bit grey (or RGB for ``colorhash``); 16-bit data is scaled by
  1/257 so a 16-bit and an 8-bit copy of an image hash alike;
* reduced by a power of two to a thumbnail of at least ``8 * hash_size``
  pixels a side (JPEGs are *decoded* at that size with Pillow's draft mode,
  which is what makes hashing fast), so a file and an in-memory frame with the
  same pixels give the same hash;
* uniform letterbox / pillarbox borders cropped (on by default), because black
  bars dominate a hash of 64 bits.

Hashes of many images are an ``(N, W)`` array of ``uint64`` words, the bits in
reading order, most significant bit first, zero-padded at the end. The Hamming
distance of two hashes is ``popcount(a ^ b)`` summed over words: a count of
**bits**, never of differing hex characters.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageOps

from napari_video_extract.core.dedup_settings import (
    DEFAULT_THRESHOLDS_64,
    METHODS,
    check_method,
    colorhash_binbits,
    default_threshold,
    hash_bits,
)

__all__ = [
    "CACHE_NAME",
    "DEFAULT_THRESHOLDS_64",
    "IMAGE_SUFFIXES",
    "METHODS",
    "FileHash",
    "HashFilesResult",
    "PackedHash",
    "crop_uniform_borders",
    "default_threshold",
    "hamming_bits",
    "hash_bits",
    "hash_files",
    "hash_frames",
    "hash_image",
    "hashes_from_hex",
    "hashes_to_hex",
    "load_image",
    "pack_bits",
    "sharpness",
]

#: File name suffixes (lower case) treated as images when scanning a folder.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
     ".pgm", ".pbm", ".pnm", ".tga", ".jp2"}
)  # fmt: skip

#: Name of the per-folder hash cache file.
CACHE_NAME = ".nve-hashcache.json"


_PIPELINE_VERSION = 2  # bump when the normalisation changes: invalidates caches
_BACKGROUND = (255, 255, 255)
_MIN_CROPPED_SIDE = 8

if hasattr(np, "bitwise_count"):  # numpy >= 2

    def _popcount(words: np.ndarray) -> np.ndarray:
        return np.bitwise_count(words)

else:  # pragma: no cover - numpy < 2
    _POPCOUNT_TABLE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(words: np.ndarray) -> np.ndarray:
        as_bytes = np.ascontiguousarray(words).view(np.uint8)
        counts = _POPCOUNT_TABLE[as_bytes].reshape(*words.shape, 8)
        return counts.sum(axis=-1, dtype=np.uint8)


# --------------------------------------------------------------------------- bits


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack boolean hashes into ``uint64`` words.

    Parameters
    ----------
    bits : ndarray of bool, shape (..., n_bits) or (n_bits,)
        The bits in reading order.

    Returns
    -------
    ndarray of uint64, shape (..., ceil(n_bits / 64))
        Most significant bit first, zero padded at the end.
    """
    bits = np.asarray(bits, dtype=bool)
    n_bits = bits.shape[-1]
    n_words = max(1, math.ceil(n_bits / 64))
    padded = np.zeros((*bits.shape[:-1], n_words * 64), dtype=bool)
    padded[..., :n_bits] = bits
    packed = np.packbits(padded, axis=-1)  # big-endian bytes
    return packed.view(">u8").astype(np.uint64).reshape(*bits.shape[:-1], n_words)


def _unpack_bits(words: np.ndarray, n_bits: int) -> np.ndarray:
    as_bytes = np.ascontiguousarray(words.astype(">u8")).view(np.uint8)
    return np.unpackbits(as_bytes.reshape(*words.shape[:-1], -1), axis=-1)[..., :n_bits]


def hamming_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance in bits between packed hashes (broadcasting).

    Parameters
    ----------
    a, b : ndarray of uint64, shape (..., W)
        Packed hashes as returned by :func:`pack_bits` / :func:`hash_frames`.

    Returns
    -------
    ndarray of int
        Number of differing bits, shape ``broadcast(a, b).shape[:-1]``.
    """
    diff = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    counts = _popcount(diff)
    if counts.shape[-1] == 1:
        return counts[..., 0].astype(np.int64)
    return counts.sum(axis=-1, dtype=np.int64)


def hashes_to_hex(words: np.ndarray, n_bits: int) -> list[str]:
    """Hex strings of packed hashes (``ceil(n_bits / 4)`` digits, like imagehash).

    Parameters
    ----------
    words : ndarray of uint64, shape (N, W)
        Packed hashes.
    n_bits : int
        Number of meaningful bits.

    Returns
    -------
    list of str
        One lower-case hex string per hash.
    """
    words = np.atleast_2d(np.asarray(words, dtype=np.uint64))
    pad = words.shape[1] * 64 - n_bits
    digits = math.ceil(n_bits / 4)
    out = []
    for row in words:
        value = 0
        for word in row:
            value = (value << 64) | int(word)
        out.append(format(value >> pad, f"0{digits}x"))
    return out


def hashes_from_hex(hexes: Sequence[str], n_bits: int) -> np.ndarray:
    """Packed hashes from hex strings written by :func:`hashes_to_hex`.

    Parameters
    ----------
    hexes : sequence of str
        Hex strings.
    n_bits : int
        Number of meaningful bits.

    Returns
    -------
    ndarray of uint64, shape (N, ceil(n_bits / 64))

    Raises
    ------
    ValueError
        A string is not hex or has more than ``n_bits`` bits.
    """
    n_words = max(1, math.ceil(n_bits / 64))
    pad = n_words * 64 - n_bits
    out = np.zeros((len(hexes), n_words), dtype=np.uint64)
    mask = (1 << 64) - 1
    for i, text in enumerate(hexes):
        value = int(text, 16)
        if value >> n_bits:
            raise ValueError(f"hash {text!r} has more than {n_bits} bits")
        value <<= pad
        for w in range(n_words - 1, -1, -1):
            out[i, w] = value & mask
            value >>= 64
    return out


class PackedHash:
    """One perceptual hash: ``a - b`` is the Hamming distance in **bits**.

    Parameters
    ----------
    words : array_like of uint64, shape (W,)
        Packed bits (see :func:`pack_bits`).
    n_bits : int
        Number of meaningful bits.
    """

    __slots__ = ("n_bits", "words")

    def __init__(self, words: np.ndarray, n_bits: int) -> None:
        words = np.array(words, dtype=np.uint64).reshape(-1)
        if words.size != max(1, math.ceil(n_bits / 64)):
            raise ValueError(f"{words.size} words cannot hold exactly {n_bits} bits")
        words.flags.writeable = False
        self.words = words
        self.n_bits = int(n_bits)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> PackedHash:
        """Hash from a boolean array (e.g. ``imagehash.ImageHash.hash``)."""
        flat = np.asarray(bits, dtype=bool).reshape(-1)
        return cls(pack_bits(flat), flat.size)

    @classmethod
    def from_hex(cls, text: str, n_bits: int) -> PackedHash:
        """Hash from its hex string (see :meth:`to_hex`)."""
        return cls(hashes_from_hex([text], n_bits)[0], n_bits)

    def to_hex(self) -> str:
        """Hex string, ``ceil(n_bits / 4)`` lower-case digits."""
        return hashes_to_hex(self.words[None, :], self.n_bits)[0]

    def bits(self) -> np.ndarray:
        """The hash as a boolean array of ``n_bits`` bits."""
        return _unpack_bits(self.words[None, :], self.n_bits)[0].astype(bool)

    def __sub__(self, other: PackedHash) -> int:
        if not isinstance(other, PackedHash):
            return NotImplemented
        if other.n_bits != self.n_bits:
            raise ValueError(f"cannot compare a {self.n_bits}-bit and a {other.n_bits}-bit hash")
        return int(hamming_bits(self.words, other.words))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackedHash):
            return NotImplemented
        return self.n_bits == other.n_bits and bool(np.array_equal(self.words, other.words))

    def __hash__(self) -> int:
        return hash((self.n_bits, self.words.tobytes()))

    def __str__(self) -> str:
        return self.to_hex()

    def __repr__(self) -> str:
        return f"PackedHash({self.to_hex()!r}, n_bits={self.n_bits})"


# ---------------------------------------------------------------- image loading


def _thumbnail_side(hash_size: int) -> int:
    return max(64, 8 * hash_size)


def _to_8bit(image: Image.Image, *, color: bool) -> Image.Image:
    """Convert any Pillow mode to ``L`` (or ``RGB`` when ``color``)."""
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        flat.alpha_composite(rgba)
        image = flat.convert("RGB")
    elif mode.startswith("I;16"):
        array = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")
    elif mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scaled = (array - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(array)
        image = Image.fromarray(np.rint(scaled).astype(np.uint8), "L")
    elif mode not in ("L", "RGB"):
        image = image.convert("RGB")  # 1, P, CMYK, YCbCr, LAB, HSV...
    want = "RGB" if color else "L"
    return image if image.mode == want else image.convert(want)


def _reduce_to(image: Image.Image, side: int) -> Image.Image:
    """Reduce by the largest power of two (<= 8) keeping both sides >= ``side``."""
    factor = 1
    while factor < 8 and min(image.size) // (factor * 2) >= side:
        factor *= 2
    return image.reduce(factor) if factor > 1 else image


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
    for _ in range(max_passes):
        gray = np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.int16)
        h, w = gray.shape
        if h < 2 * _MIN_CROPPED_SIDE or w < 2 * _MIN_CROPPED_SIDE:
            return image
        core = gray[h // 4 : h - h // 4, w // 4 : w - w // 4]
        limit = min(tolerance, float(np.abs(core - core.mean()).mean()) / 3.0)
        # A side's bar is less than half the image (else too little is left).
        top = _border_run(gray[: h // 2], limit)
        bottom = _border_run(gray[: h - h // 2 - 1 : -1], limit)
        left = _border_run(gray[:, : w // 2].T, limit)
        right = _border_run(gray[:, : w - w // 2 - 1 : -1].T, limit)
        if top + bottom == 0 and left + right == 0:
            return image
        if h - top - bottom < _MIN_CROPPED_SIDE or w - left - right < _MIN_CROPPED_SIDE:
            return image
        image = image.crop((left, top, w - right, h - bottom))
    return image


def _border_run(gray: np.ndarray, tolerance: float) -> int:
    """Number of leading rows of ``gray`` that are uniform and of the edge colour."""
    reference = np.median(gray[0])
    deviation = np.abs(gray - reference)
    is_border = (deviation.mean(axis=1) <= tolerance) & ((deviation > 40).mean(axis=1) <= 0.01)
    if not is_border[0]:
        return 0
    not_border = np.flatnonzero(~is_border)
    return int(not_border[0]) if not_border.size else gray.shape[0]


def load_image(
    source: str | os.PathLike[str] | Image.Image,
    *,
    thumbnail_side: int | None = 64,
    color: bool = False,
    crop_borders: bool = True,
) -> Image.Image:
    """Open and normalise an image for hashing.

    Parameters
    ----------
    source : path or PIL.Image.Image
        An image file or an already opened image.
    thumbnail_side : int or None, optional
        Reduce (JPEG: decode) by a power of two while both sides stay at least
        this large; ``None`` keeps full resolution.
    color : bool, optional
        Return ``RGB`` instead of ``L``.
    crop_borders : bool, optional
        Crop uniform borders (:func:`crop_uniform_borders`).

    Returns
    -------
    PIL.Image.Image
        A loaded ``L`` or ``RGB`` image, EXIF orientation applied,
        transparency flattened onto white.

    Raises
    ------
    OSError
        The file cannot be opened or decoded (corrupt, truncated, not an image).
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        image = Image.open(source)
        if thumbnail_side and image.format == "JPEG" and image.mode in ("L", "RGB"):
            # Decode at 1/2, 1/4 or 1/8 scale directly from the DCT coefficients.
            image.draft("RGB" if color else "L", (thumbnail_side, thumbnail_side))
        image.load()
    # A broken EXIF block keeps the stored orientation.
    with contextlib.suppress(ValueError, TypeError, KeyError, SyntaxError, OSError):
        image = ImageOps.exif_transpose(image)
    image = _to_8bit(image, color=color)
    if thumbnail_side:
        image = _reduce_to(image, thumbnail_side)
    if crop_borders:
        image = crop_uniform_borders(image)
    return image


@functools.lru_cache(maxsize=8)
def _dct_rows(n: int, k: int) -> np.ndarray:
    # First k rows of the unnormalised DCT-II of size n (scipy.fftpack.dct).
    freq, pos = np.arange(k)[:, None], np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * freq * (2 * pos + 1) / (2 * n))


def _phash_bits(image: Image.Image, hash_size: int) -> np.ndarray:
    """``imagehash.phash`` bits, with the DCT as a cached matrix product.

    Same steps and the same bits as imagehash (checked on 1,500 stills at
    hash sizes 8 and 16); its scipy DCT costs ~0.5 s of import in every
    worker process and computes all 32x32 coefficients to keep 8x8.
    """
    side = hash_size * 4
    small = image.convert("L").resize((side, side), Image.Resampling.LANCZOS)
    rows = _dct_rows(side, hash_size)
    low = rows @ np.asarray(small, dtype=np.float64) @ rows.T
    return (low > np.median(low)).reshape(-1)


def _imagehash_bits(image: Image.Image, method: str, hash_size: int) -> np.ndarray:
    if method == "phash":
        return _phash_bits(image, hash_size)
    elif method == "dhash":
        result = imagehash.dhash(image, hash_size=hash_size)
    elif method == "ahash":
        result = imagehash.average_hash(image, hash_size=hash_size)
    elif method == "whash":
        # A fixed wavelet scale: the hash must not depend on the image size.
        result = imagehash.whash(image, hash_size=hash_size, image_scale=4 * hash_size)
    else:
        result = imagehash.colorhash(image, binbits=colorhash_binbits(hash_size))
    return np.asarray(result.hash, dtype=bool).reshape(-1)


def hash_image(
    source: str | os.PathLike[str] | Image.Image,
    *,
    method: str = "phash",
    hash_size: int = 8,
    crop_borders: bool = True,
) -> PackedHash:
    """Hash one image file or PIL image.

    Parameters
    ----------
    source : path or PIL.Image.Image
        The image.
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes (see :func:`hash_bits`).
    crop_borders : bool, optional
        Crop uniform borders before hashing.

    Returns
    -------
    PackedHash

    Raises
    ------
    ValueError
        Unknown method or invalid hash size.
    OSError
        The image cannot be decoded.
    """
    check_method(method, hash_size)
    image = load_image(
        source,
        thumbnail_side=_thumbnail_side(hash_size),
        color=method == "colorhash",
        crop_borders=crop_borders,
    )
    return PackedHash.from_bits(_imagehash_bits(image, method, hash_size))


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
        image = np.asarray(_to_8bit(image, color=False))
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


def _file_sharpness(path: str) -> float:
    """Sharpness measured at a fixed scale (long side 512) so sizes compare."""
    image = load_image(path, thumbnail_side=_SHARPNESS_SIDE, crop_borders=False)
    scale = _SHARPNESS_SIDE / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return sharpness(np.asarray(image))


def hash_frames(
    frames: np.ndarray,
    *,
    method: str = "phash",
    hash_size: int = 8,
    crop_borders: bool = True,
) -> np.ndarray:
    """Hash a stack of frames in memory (the API of the napari widget).

    Parameters
    ----------
    frames : ndarray, shape (N, H, W) or (N, H, W, C)
        ``uint8`` (or ``uint16``) frames; C is 1, 3 (RGB) or 4 (RGBA).
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes.
    crop_borders : bool, optional
        Crop uniform borders before hashing.

    Returns
    -------
    ndarray of uint64, shape (N, W)
        Packed hashes, ``W = ceil(hash_bits(method, hash_size) / 64)``.

    Raises
    ------
    ValueError
        Wrong shape, unknown method or invalid hash size.
    TypeError
        Frames that are neither ``uint8`` nor ``uint16``.
    """
    check_method(method, hash_size)
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[3] not in (1, 3, 4)):
        raise ValueError(f"expected frames of shape (N, H, W) or (N, H, W, C), got {frames.shape}")
    if frames.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"expected uint8 or uint16 frames, got {frames.dtype}")
    n_bits = hash_bits(method, hash_size)
    out = np.zeros((frames.shape[0], max(1, math.ceil(n_bits / 64))), dtype=np.uint64)
    for i, frame in enumerate(frames):
        out[i] = hash_image(
            _frame_to_image(frame), method=method, hash_size=hash_size, crop_borders=crop_borders
        ).words
    return out


def _frame_to_image(frame: np.ndarray) -> Image.Image:
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.dtype == np.uint16:
        mode = "I;16" if frame.ndim == 2 else None
        if mode is None:  # 16-bit colour: Pillow has no such mode
            frame = np.rint(frame / 257.0).astype(np.uint8)
        else:
            return Image.fromarray(np.ascontiguousarray(frame), mode)
    if frame.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(frame), "L")
    return Image.fromarray(np.ascontiguousarray(frame), "RGBA" if frame.shape[2] == 4 else "RGB")


# ------------------------------------------------------------------ files, cache


@dataclass
class FileHash:
    """Hash of one file (or why it has none).

    Attributes
    ----------
    path : Path
        The file.
    hash : PackedHash or None
        ``None`` when the file could not be decoded (see ``error``).
    width, height : int
        Pixel size of the stored image (0 when unreadable).
    size_bytes : int
        File size.
    sharpness : float or None
        Variance of the Laplacian at a 512-pixel scale, when requested.
    error : str or None
        One-line reason the file could not be hashed.
    from_cache : bool
        The hash came from the folder's hash cache.
    """

    path: Path
    hash: PackedHash | None
    width: int = 0
    height: int = 0
    size_bytes: int = 0
    sharpness: float | None = None
    error: str | None = None
    from_cache: bool = False


@dataclass
class HashFilesResult:
    """What :func:`hash_files` did.

    Attributes
    ----------
    files : list of FileHash
        One record per input path, in input order.
    n_bits : int
        Bits per hash.
    cache_hits : int
        Files whose hash came from a cache (not re-opened).
    hashed : int
        Files opened and hashed in this call.
    failed : int
        Files that could not be hashed.
    cache_errors : list of str
        Caches that could not be read or written (the run goes on without).
    """

    files: list[FileHash] = field(default_factory=list)
    n_bits: int = 64
    cache_hits: int = 0
    hashed: int = 0
    failed: int = 0
    cache_errors: list[str] = field(default_factory=list)

    def hash_array(self) -> np.ndarray:
        """Packed hashes of the readable files, shape (n_readable, W)."""
        n_words = max(1, math.ceil(self.n_bits / 64))
        rows = [f.hash.words for f in self.files if f.hash is not None]
        return np.array(rows, dtype=np.uint64).reshape(len(rows), n_words)


def _settings_key(method: str, hash_size: int, crop_borders: bool) -> str:
    crop = "crop" if crop_borders else "nocrop"
    return f"v{_PIPELINE_VERSION}:{method}:{hash_size}:{crop}"


def _hash_one(job: tuple[str, str, int, bool, bool]) -> tuple[Any, ...]:
    """Worker: (hex, width, height, sharpness, error) for one file."""
    path, method, hash_size, crop_borders, want_sharpness = job
    try:
        with Image.open(path) as probe:
            width, height = probe.size
            if probe.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated 90 degrees
                width, height = height, width
        packed = hash_image(path, method=method, hash_size=hash_size, crop_borders=crop_borders)
        sharp = _file_sharpness(path) if want_sharpness else None
        return packed.to_hex(), width, height, sharp, None
    except Image.DecompressionBombError as exc:
        return None, 0, 0, None, f"image too large: {exc}"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "cannot identify image file" in reason:
            reason = "not a readable image"
        return None, 0, 0, None, " ".join(reason.split())


def _read_cache(folder: Path) -> dict[str, Any]:
    path = folder / CACHE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # unreadable or corrupt cache: start afresh
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _cache_is_ours(path: Path) -> bool:
    """Absent, or a JSON object in our cache format (``version`` + ``entries``)."""
    if not os.path.lexists(path):
        return True
    if path.is_symlink() or not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "version" in data and isinstance(data.get("entries"), dict)


def _write_cache(folder: Path, entries: dict[str, Any]) -> None:
    """Write the cache atomically (temp file in the folder + os.replace).

    A file of that name that is not one of our caches is left as it is
    (``FileExistsError``).
    """
    if not _cache_is_ours(folder / CACHE_NAME):
        raise FileExistsError(errno.EEXIST, "exists and is not our hash cache; not replaced")
    payload = json.dumps({"version": 1, "entries": entries}, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(prefix=CACHE_NAME + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        os.replace(tmp, folder / CACHE_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _executor(n_workers: int) -> ProcessPoolExecutor:
    # fork is the cheapest start, but only safe while this process has no
    # other threads (a napari session has many): then use a preloaded forkserver.
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
    elif "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:  # pragma: no cover - Windows / macOS spawn
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=n_workers, mp_context=context)


def hash_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    method: str = "phash",
    hash_size: int = 8,
    crop_borders: bool = True,
    with_sharpness: bool = False,
    use_cache: bool = True,
    write_cache: bool = True,
    read_only_folders: Iterable[str | os.PathLike[str]] = (),
    parallel: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    map_jobs: Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]] | None = None,
) -> HashFilesResult:
    """Hash image files, reusing each folder's hash cache.

    The cache (:data:`CACHE_NAME` in each file's folder) is keyed on the file
    name, its size and ``st_mtime_ns``, and the hash settings; a file whose
    entry matches is not opened again. The cache is rewritten atomically;
    a folder where it cannot be written, or where a file of that name is not
    one of our caches, is still hashed (``cache_errors``; the file is kept).

    Parameters
    ----------
    paths : iterable of path
        Image files (symlinks are followed: this function only reads).
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes.
    crop_borders : bool, optional
        Crop uniform borders before hashing.
    with_sharpness : bool, optional
        Also measure :func:`sharpness` (one more decode per uncached file).
    use_cache : bool, optional
        Read the caches.
    write_cache : bool, optional
        Update the caches (``False`` for a dry run: nothing is written).
    read_only_folders : iterable of path, optional
        Folders whose cache is read but never written (e.g. reference
        folders, which must stay untouched).
    parallel : bool or None, optional
        Hash in a process pool; ``None`` decides from the number of files
        (at least 64 to hash) and CPUs.
    progress : callable(done, total), optional
        Called as files are done (cache hits count as done at once).
    map_jobs : callable(func, jobs) -> iterable, optional
        Runs the hashing of the uncached files elsewhere (e.g.
        :mod:`~napari_video_extract.core.distributed`): must return
        ``func(job)`` for every job, in order. ``func`` and the jobs are
        picklable; a job's first item is the file path as given. Caches are
        still read and written here. Overrides ``parallel``.

    Returns
    -------
    HashFilesResult
        Records in input order, plus cache hit and failure counters.

    Raises
    ------
    ValueError
        Unknown method or invalid hash size.
    """
    check_method(method, hash_size)
    paths = [Path(p) for p in paths]
    n_bits = hash_bits(method, hash_size)
    key = _settings_key(method, hash_size, crop_borders)
    result = HashFilesResult(n_bits=n_bits)
    records: list[FileHash | None] = [None] * len(paths)
    caches: dict[Path, dict[str, Any]] = {}
    todo: list[int] = []
    stats: list[os.stat_result | None] = []

    for i, path in enumerate(paths):
        folder = path.parent
        if folder not in caches:
            caches[folder] = _read_cache(folder) if use_cache else {}
        try:
            st = path.stat()
        except OSError as exc:
            stats.append(None)
            records[i] = FileHash(path, None, error=exc.strerror or str(exc))
            result.failed += 1
            continue
        stats.append(st)
        entry = caches[folder].get(path.name)
        if (
            isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and key in entry.get("hashes", {})
            and (not with_sharpness or entry.get("sharpness") is not None)
        ):
            records[i] = FileHash(
                path,
                PackedHash.from_hex(entry["hashes"][key], n_bits),
                width=int(entry.get("width", 0)),
                height=int(entry.get("height", 0)),
                size_bytes=st.st_size,
                sharpness=entry.get("sharpness"),
                from_cache=True,
            )
            result.cache_hits += 1
        else:
            todo.append(i)

    total = len(paths)
    done = total - len(todo)
    if progress is not None:
        progress(done, total)

    jobs = [(str(paths[i]), method, hash_size, crop_borders, with_sharpness) for i in todo]
    n_cpu = os.cpu_count() or 1
    if parallel is None:
        parallel = len(jobs) >= 64 and n_cpu > 1
    if map_jobs is not None:
        outputs = map_jobs(_hash_one, jobs) if jobs else iter(())
        done = _collect(outputs, todo, paths, stats, records, result, progress, done, total)
    elif parallel and jobs:
        executor = _executor(min(n_cpu, 8))
        with executor:
            chunk = max(1, min(32, len(jobs) // (4 * n_cpu)))
            outputs = executor.map(_hash_one, jobs, chunksize=chunk)
            done = _collect(outputs, todo, paths, stats, records, result, progress, done, total)
    else:
        outputs = (_hash_one(job) for job in jobs)
        done = _collect(outputs, todo, paths, stats, records, result, progress, done, total)

    result.files = [r for r in records if r is not None]
    if write_cache:
        read_only = {Path(os.path.abspath(f)) for f in read_only_folders}
        _update_caches(caches, result.files, stats, key, result, read_only=read_only)
    return result


def _collect(outputs, todo, paths, stats, records, result, progress, done, total) -> int:
    for i, (hex_, width, height, sharp, error) in zip(todo, outputs, strict=True):
        st = stats[i]
        size = st.st_size if st is not None else 0
        if error is not None:
            records[i] = FileHash(paths[i], None, size_bytes=size, error=error)
            result.failed += 1
        else:
            packed = PackedHash.from_hex(hex_, result.n_bits)
            records[i] = FileHash(paths[i], packed, width, height, size, sharpness=sharp)
            result.hashed += 1
        done += 1
        if progress is not None:
            progress(done, total)
    return done


def _update_caches(caches, files, stats, key, result, *, read_only=frozenset()) -> None:
    changed: set[Path] = set()
    for record, st in zip(files, stats, strict=True):
        if record.hash is None or st is None or record.from_cache:
            continue
        folder = record.path.parent
        if Path(os.path.abspath(folder)) in read_only:
            continue
        entries = caches[folder]
        entry = entries.get(record.path.name)
        if not (
            isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
        ):
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hashes": {}}
        entry["width"], entry["height"] = record.width, record.height
        entry.setdefault("hashes", {})[key] = record.hash.to_hex()
        if record.sharpness is not None:
            entry["sharpness"] = record.sharpness
        entries[record.path.name] = entry
        changed.add(folder)
    for folder in sorted(changed):
        entries = caches[folder]
        # Forget files that are gone (moved to duplicates, deleted, renamed).
        for name in [n for n in entries if not (folder / n).exists()]:
            del entries[name]
        try:
            _write_cache(folder, entries)
        except OSError as exc:
            result.cache_errors.append(f"{folder / CACHE_NAME}: {exc.strerror or exc}")

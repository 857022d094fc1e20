"""Images normalised for hashing: one decode, the same pixels whatever the source.

* EXIF orientation applied (:func:`PIL.ImageOps.exif_transpose`);
* transparency composited onto a flat white background;
* any mode (``1``, ``L``, ``P``, ``CMYK``, ``I;16``, ``I``, ``F``, ``RGBA``...)
  converted to 8-bit grey (or RGB for ``colorhash``); 16-bit data is scaled by
  1/257 so a 16-bit and an 8-bit copy of an image hash alike;
* reduced by a power of two to a thumbnail of at least ``8 * hash_size``
  pixels a side (JPEGs are *decoded* at that size with Pillow's draft mode,
  from the DCT coefficients: what makes hashing fast), so a file and an
  in-memory frame with the same pixels give the same hash;
* uniform letterbox / pillarbox borders cropped
  (:func:`~napari_video_extract.core.borders.crop_uniform_borders`), or
  cropped to a given :class:`~napari_video_extract.core.borders.BorderBox`
  (the one shared by the stills of a video).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
from PIL import Image, ImageOps

from napari_video_extract.core.borders import BorderBox, crop_to_box, find_border_box

__all__ = [
    "frame_to_image",
    "load_image",
    "load_image_and_box",
    "open_for_hash",
    "open_for_hash_and_box",
    "thumbnail_side",
    "to_8bit",
]

_BACKGROUND = (255, 255, 255)


def thumbnail_side(hash_size: int) -> int:
    """Smallest side the image is reduced to for a hash of ``hash_size``."""
    return max(64, 8 * hash_size)


def to_8bit(image: Image.Image, *, color: bool) -> Image.Image:
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
    return load_image_and_box(
        source, thumbnail_side=thumbnail_side, color=color, crop_borders=crop_borders
    )[0]


def load_image_and_box(
    source: str | os.PathLike[str] | Image.Image,
    *,
    thumbnail_side: int | None = 64,
    color: bool = False,
    crop_borders: bool = True,
    crop_box: BorderBox | None = None,
) -> tuple[Image.Image, BorderBox | None]:
    """:func:`load_image`, cropped to ``crop_box`` when given, and the image's own bars.

    Parameters
    ----------
    source, thumbnail_side, color, crop_borders
        As for :func:`load_image`.
    crop_box : BorderBox, optional
        Crop to this box instead of the image's own (with ``crop_borders``),
        unless it is for another size of normalised image.

    Returns
    -------
    image : PIL.Image.Image
        The normalised, cropped image.
    box : BorderBox or None
        The image's own bars (:func:`find_border_box`); ``None`` without
        ``crop_borders`` or when ``crop_box`` was used (they are not looked for).
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        image = Image.open(source)
        _decode(image, thumbnail_side, color)
    # A broken EXIF block keeps the stored orientation.
    with contextlib.suppress(ValueError, TypeError, KeyError, SyntaxError, OSError):
        image = ImageOps.exif_transpose(image)
    return _finish(
        image,
        thumbnail_side=thumbnail_side,
        color=color,
        crop_borders=crop_borders,
        crop_box=crop_box,
    )


def _decode(image: Image.Image, thumbnail_side: int | None, color: bool) -> None:
    if thumbnail_side and image.format == "JPEG" and image.mode in ("L", "RGB"):
        # Decode at 1/2, 1/4 or 1/8 scale directly from the DCT coefficients.
        image.draft("RGB" if color else "L", (thumbnail_side, thumbnail_side))
    image.load()


def _finish(
    image: Image.Image,
    *,
    thumbnail_side: int | None,
    color: bool,
    crop_borders: bool,
    crop_box: BorderBox | None,
) -> tuple[Image.Image, BorderBox | None]:
    image = to_8bit(image, color=color)
    if thumbnail_side:
        image = _reduce_to(image, thumbnail_side)
    if not crop_borders:
        return image, None
    if crop_box is not None and crop_box[:2] == image.size:
        # The own bars are not looked for: the caller knows them already.
        return crop_to_box(image, crop_box), None
    own = find_border_box(image)
    return crop_to_box(image, own), own


def open_for_hash(
    path: str | os.PathLike[str],
    *,
    thumbnail_side: int | None,
    color: bool = False,
    crop_borders: bool = True,
) -> tuple[Image.Image, int, int]:
    """:func:`load_image` of a file, and the file's picture size, from one open.

    Parameters
    ----------
    path : path
        An image file.
    thumbnail_side : int or None
        As for :func:`load_image`.
    color : bool, optional
        As for :func:`load_image`.
    crop_borders : bool, optional
        As for :func:`load_image`.

    Returns
    -------
    image : PIL.Image.Image
        Exactly what :func:`load_image` returns for ``path``.
    width, height : int
        The stored picture's size, as displayed (swapped when the EXIF
        orientation turns it by 90 degrees).

    Raises
    ------
    OSError, ValueError, SyntaxError, EOFError
        The file cannot be opened or decoded, or its EXIF block cannot be
        read; ``PIL.Image.DecompressionBombError`` for a huge picture.
    """
    image, width, height, _ = open_for_hash_and_box(
        path, thumbnail_side=thumbnail_side, color=color, crop_borders=crop_borders
    )
    return image, width, height


def open_for_hash_and_box(
    path: str | os.PathLike[str],
    *,
    thumbnail_side: int | None,
    color: bool = False,
    crop_borders: bool = True,
    crop_box: BorderBox | None = None,
) -> tuple[Image.Image, int, int, BorderBox | None]:
    """:func:`open_for_hash`, with ``crop_box`` and the own bars of :func:`load_image_and_box`.

    ``box`` (the fourth value) is ``None`` without ``crop_borders`` or when
    ``crop_box`` was used.
    """
    image = Image.open(path)
    try:
        width, height = image.size
        # Unsuppressed: a file whose EXIF cannot be read is not hashed.
        orientation = image.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):  # rotated 90 degrees
            width, height = height, width
        if image.format != "JPEG":
            # Other formats may read their EXIF only once decoded (PNG), which
            # the call above may have done: open afresh, as load_image does.
            image.close()
            loaded, box = load_image_and_box(
                path,
                thumbnail_side=thumbnail_side,
                color=color,
                crop_borders=crop_borders,
                crop_box=crop_box,
            )
            return loaded, width, height, box
        _decode(image, thumbnail_side, color)  # closes the file
    except BaseException:
        image.close()
        raise
    if orientation != 1:  # else exif_transpose would return a plain copy
        with contextlib.suppress(ValueError, TypeError, KeyError, SyntaxError, OSError):
            image = ImageOps.exif_transpose(image)
    image, box = _finish(
        image,
        thumbnail_side=thumbnail_side,
        color=color,
        crop_borders=crop_borders,
        crop_box=crop_box,
    )
    return image, width, height, box


def frame_to_image(frame: np.ndarray) -> Image.Image:
    """A PIL image of one in-memory frame (``(H, W)``, ``(H, W, 1|3|4)``, 8 or 16 bit)."""
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

"""Perceptual hashes of frames in memory (a napari layer's), one crop box per video.

Same normalisation and hash as files (:mod:`.image_hash`); with
``crop_groups`` the frames of one video share one border box
(:mod:`~napari_video_extract.core.crop_consensus`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from napari_video_extract.core.borders import BorderBox
from napari_video_extract.core.crop_consensus import consensus_boxes
from napari_video_extract.core.dedup_settings import check_method, hash_bits
from napari_video_extract.core.image_hash import _hash_and_thumbnail
from napari_video_extract.core.normalise import frame_to_image
from napari_video_extract.core.verify import THUMB_SHAPE

__all__ = ["hash_frames", "hash_frames_and_boxes", "hash_frames_and_thumbnails"]


def hash_frames(
    frames: np.ndarray,
    *,
    method: str = "phash",
    hash_size: int = 8,
    crop_borders: bool = True,
    crop_groups: Sequence[int] | np.ndarray | None = None,
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
    crop_groups : sequence of int, optional
        The video of each frame: the frames of one video (id >= 0) are
        cropped with one box, the bars all of them have
        (:func:`~napari_video_extract.core.crop_consensus.consensus_boxes`);
        -1, or no ``crop_groups``: each frame its own crop.

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
    return _hash_frames(
        frames, method, hash_size, crop_borders, thumbnails=False, crop_groups=crop_groups
    )[0]


def hash_frames_and_thumbnails(
    frames: np.ndarray,
    *,
    method: str = "phash",
    hash_size: int = 8,
    crop_borders: bool = True,
    crop_groups: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and verification thumbnails of frames in memory, from one pass.

    The thumbnails are what
    :func:`~napari_video_extract.core.clustering.cluster_verified` compares.

    Parameters
    ----------
    frames : ndarray, shape (N, H, W) or (N, H, W, C)
        As for :func:`hash_frames`.
    method : {"phash", "dhash", "ahash", "whash", "colorhash"}, optional
        Hash function.
    hash_size : int, optional
        8 gives 64-bit hashes.
    crop_borders : bool, optional
        Crop uniform borders before hashing (the thumbnail is of the same
        cropped image).
    crop_groups : sequence of int, optional
        As for :func:`hash_frames`.

    Returns
    -------
    hashes : ndarray of uint64, shape (N, W)
        As :func:`hash_frames`.
    thumbnails : ndarray of uint8, shape (N, *THUMB_SHAPE)
        Grey thumbnails (:func:`~napari_video_extract.core.verify.make_thumbnail`).

    Raises
    ------
    ValueError, TypeError
        As :func:`hash_frames`.
    """
    return _hash_frames(
        frames, method, hash_size, crop_borders, thumbnails=True, crop_groups=crop_groups
    )[:2]


def hash_frames_and_boxes(
    frames: np.ndarray,
    *,
    method: str = "phash",
    hash_size: int = 8,
    crop_borders: bool = True,
    thumbnails: bool = False,
    crop_boxes: Sequence[BorderBox | None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[BorderBox | None]]:
    """:func:`hash_frames` of a part of a stack, with each frame's own bars.

    For a stack read a part at a time (a lazy video): hash every part, take
    :func:`~napari_video_extract.core.crop_consensus.consensus_boxes` of the
    bars, and hash again, with ``crop_boxes``, the frames whose box changed.

    Parameters
    ----------
    frames : ndarray, shape (N, H, W) or (N, H, W, C)
        As for :func:`hash_frames`.
    method, hash_size, crop_borders
        As for :func:`hash_frames`.
    thumbnails : bool, optional
        Also return the verification thumbnails.
    crop_boxes : sequence of BorderBox or None, optional
        The box to crop each frame with (``None``: its own bars).

    Returns
    -------
    hashes : ndarray of uint64, shape (N, W)
    thumbnails : ndarray of uint8, shape (N, *THUMB_SHAPE), or None
    boxes : list of BorderBox or None
        Each frame's own bars (``None`` without ``crop_borders`` or where
        ``crop_boxes`` gave the box).

    Raises
    ------
    ValueError, TypeError
        As :func:`hash_frames`.
    """
    return _hash_frames(
        frames, method, hash_size, crop_borders, thumbnails=thumbnails, crop_boxes=crop_boxes
    )


def _hash_frames(
    frames, method, hash_size, crop_borders, *, thumbnails, crop_groups=None, crop_boxes=None
):
    check_method(method, hash_size)
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[3] not in (1, 3, 4)):
        raise ValueError(f"expected frames of shape (N, H, W) or (N, H, W, C), got {frames.shape}")
    if frames.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"expected uint8 or uint16 frames, got {frames.dtype}")
    n_bits = hash_bits(method, hash_size)
    out = np.zeros((frames.shape[0], max(1, math.ceil(n_bits / 64))), dtype=np.uint64)
    thumbs = np.zeros((frames.shape[0], *THUMB_SHAPE), dtype=np.uint8) if thumbnails else None
    if crop_boxes is not None and len(crop_boxes) != len(frames):
        raise ValueError(f"{len(crop_boxes)} crop boxes for {len(frames)} frames")
    if crop_groups is not None and len(crop_groups) != len(frames):
        raise ValueError(f"{len(crop_groups)} crop groups for {len(frames)} frames")
    boxes: list[BorderBox | None] = []

    def one(i: int, box: BorderBox | None) -> BorderBox | None:
        packed, thumb, own = _hash_and_thumbnail(
            frame_to_image(frames[i]),
            method,
            hash_size,
            crop_borders,
            thumbnail=thumbnails,
            crop_box=box,
        )
        out[i] = packed.words
        if thumbs is not None:
            thumbs[i] = thumb
        return own

    for i in range(len(frames)):
        boxes.append(one(i, None if crop_boxes is None else crop_boxes[i]))
    if crop_groups is not None and crop_borders:
        shared = consensus_boxes(boxes, [int(g) for g in crop_groups])
        for i, (own, box) in enumerate(zip(boxes, shared, strict=True)):
            if own is not None and box is not None and own.margins != box.margins:
                one(i, box)
    return out, thumbs, boxes

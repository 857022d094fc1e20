"""A :class:`~napari_video_extract.core.review.Review` of the frames of a stack.

:func:`frames_review` reads an in-memory or lazy stack (a napari video layer)
a chunk at a time, never all at once, and hashes it with the engine ``dedup``
uses (:func:`~napari_video_extract.core.hashing.hash_frames_and_boxes`): the
frames of one video share one crop box, as the timed stills of a folder do.
Thumbnails for the verification go to an unnamed file, not to memory.
Also :meth:`Review.from_frames
<napari_video_extract.core.review.Review.from_frames>`; the file-based sources
are in :mod:`~napari_video_extract.core.review_sources`.
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_video_extract.core.crop_consensus import consensus_boxes
from napari_video_extract.core.hashing import hash_frames_and_boxes, sharpness
from napari_video_extract.core.memory_release import release_pages
from napari_video_extract.core.review import Review, ReviewSettings
from napari_video_extract.core.review_sources import _check_cancel, _sequence
from napari_video_extract.core.verify import THUMB_SHAPE

__all__ = ["frames_review"]

_FRAME_CHUNK = 16  # frames read and hashed between progress/cancel checks


def frames_review(
    frames: Any,
    settings: ReviewSettings | None = None,
    *,
    to_uint8: Callable[[np.ndarray], np.ndarray] | None = None,
    frame: np.ndarray | None = None,
    time: np.ndarray | None = None,
    video: Sequence[str] | str | None = None,
    chunk: int = _FRAME_CHUNK,
    progress: Callable[[int, int], None] | None = None,
    cluster_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Review:
    """Hash the frames of a stack, ``chunk`` frames at a time.

    Parameters
    ----------
    frames : array-like, shape (N, H, W) or (N, H, W, C)
        Anything sliceable along its first axis (a lazy video array):
        only ``chunk`` frames are in memory at once.
    settings : ReviewSettings, optional
        Default: the CLI's defaults.
    to_uint8 : callable, optional
        Converts a chunk to uint8 (e.g. through a layer's contrast limits).
    frame, time, video : optional
        Per-frame video frame number, time (s) and video name.
    chunk : int, optional
        Frames read per step.
    progress : callable(done, total), optional
        Hashing progress.
    cluster_progress : callable(done, total), optional
        Progress of the verified clustering that follows (items placed).
    cancel : threading.Event, optional
        Stops hashing and the verified clustering (raises
        :class:`~napari_video_extract.core.review.Cancelled`).

    Returns
    -------
    Review
    """
    settings = settings or ReviewSettings()
    n = int(frames.shape[0])
    words = np.zeros((n, max(1, math.ceil(settings.n_bits / 64))), dtype=np.uint64)
    thumbs = np.zeros((0, *THUMB_SHAPE), dtype=np.uint8) if settings.verify else None
    if settings.verify and n:
        # 9 KB a frame (166 MB for 18,000 frames): in an unnamed file the
        # system can page out, not in the process's memory (the map keeps its
        # own handle, so the file can be closed here).
        with tempfile.TemporaryFile() as fh:
            thumbs = np.memmap(fh, dtype=np.uint8, mode="w+", shape=(n, *THUMB_SHAPE))
    quality: list[Any] = []
    videos = [video] * n if isinstance(video, str) else video
    # Frames of one video share one crop box (as the stills of a frames.csv
    # folder in dedup): hashed with their own, then again where it differs.
    sequence = _sequence(videos, n, np.ones(n, dtype=bool))
    own: list[Any] = []

    def read(lo: int, hi: int) -> np.ndarray:
        block = np.asarray(frames[lo:hi])
        if to_uint8 is not None:
            block = to_uint8(block)
        return block[..., 0] if block.ndim == 4 and block.shape[-1] == 1 else block

    def hash_block(lo: int, block: np.ndarray, boxes: list[Any] | None) -> list[Any]:
        hashes, thumbnails, found = hash_frames_and_boxes(
            block,
            method=settings.method,
            hash_size=settings.hash_size,
            crop_borders=settings.crop_borders,
            thumbnails=thumbs is not None,
            crop_boxes=boxes,
        )
        words[lo : lo + len(block)] = hashes
        if thumbs is not None:
            thumbs[lo : lo + len(block)] = thumbnails
        return found

    for lo in range(0, n, chunk):
        _check_cancel(cancel)
        block = read(lo, lo + chunk)
        own += hash_block(lo, block, None)
        if settings.keep == "sharpest":
            quality.extend(sharpness(f) for f in block)
        elif settings.keep == "largest":
            quality.extend([block.shape[1] * block.shape[2]] * len(block))
        if thumbs is not None and (lo // chunk) % 8 == 7:
            # The rows written so far stay in the file; resident, they would
            # add 9 KB a frame to the process until the clustering's own
            # release_pages.
            release_pages(thumbs)
        if progress is not None:
            progress(min(n, lo + chunk), n)
    shared = consensus_boxes(own, sequence.tolist())
    again = [i for i in range(n) if own[i] is not None and own[i][:6] != shared[i][:6]]
    k = 0
    while k < len(again):
        _check_cancel(cancel)
        # One read of the frames within a chunk's span (a lazy video decodes
        # forward anyway); never more than a chunk in memory.
        lo, stop = again[k], k
        while stop < len(again) and again[stop] < lo + chunk:
            stop += 1
        block = read(lo, again[stop - 1] + 1)
        for i in again[k:stop]:
            hash_block(i, block[i - lo : i - lo + 1], [shared[i]])
        k = stop
    return Review(
        words,
        settings,
        thumbnails=thumbs,
        # Frames of one video are neighbours (as timed stills in dedup).
        sequence=sequence,
        frame=np.arange(n) if frame is None else frame,
        time=time,
        video=videos,
        quality=np.asarray(quality, dtype=float) if quality else None,
        cancel=cancel,
        progress=cluster_progress,
    )

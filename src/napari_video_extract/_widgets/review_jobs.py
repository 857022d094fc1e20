"""What the duplicate finder runs and shows, without its widgets.

Worker bodies (search, thumbnails, write/apply, undo: each gets a
``threading.Event`` last and yields ``(done, total)``), the conversion of a
layer's pixels to uint8 as napari shows them, engine messages worded with the
dock's field names, and the threshold histogram as a line of text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract._widgets.review_gallery import ThumbnailCache
from napari_video_extract._widgets.worker import progress_steps
from napari_video_extract.core.errors import InputError
from napari_video_extract.core.memory_release import give_back
from napari_video_extract.core.review import Review, ReviewSettings

__all__ = ["gui_message", "sparkline", "to_uint8"]

#: Core setting names -> the dock's field labels, for messages.
_FIELD_NAMES = {"hash_size": "hash size", "method": "hash", "threshold": "threshold (bits)"}
_BARS = " ▁▂▃▄▅▆▇█"


def to_uint8(frames: np.ndarray, contrast_limits: Sequence[float] | None = None) -> np.ndarray:
    """Convert any image stack to uint8 the way napari shows it.

    Parameters
    ----------
    frames : ndarray
        Any dtype. ``uint8`` is returned unchanged, ``bool`` becomes 0/255.
    contrast_limits : (float, float), optional
        The display range mapped to 0-255 (a layer's ``contrast_limits``);
        default: the data's own range (``[0, 1]`` for floats within it).

    Returns
    -------
    ndarray of uint8
    """
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype == bool:
        return frames.astype(np.uint8) * 255
    if contrast_limits is None:
        lo, hi = float(np.nanmin(frames)), float(np.nanmax(frames))
        if np.issubdtype(frames.dtype, np.floating) and lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
    else:
        lo, hi = (float(v) for v in contrast_limits)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = (frames.astype(np.float64) - lo) * scale
    return np.clip(np.nan_to_num(np.rint(out)), 0, 255).astype(np.uint8)


def gui_message(exc: BaseException) -> str:
    """An engine error worded with this dock's field names."""
    text = str(exc) if isinstance(exc, InputError | ValueError) else f"{type(exc).__name__}: {exc}"
    for core, field in _FIELD_NAMES.items():
        text = re.sub(rf"\b{core}\b", field, text)
    return text


def sparkline(counts: np.ndarray, threshold: int) -> str:
    """Histogram as one line of block characters, ``|`` after the threshold bin."""
    counts = np.asarray(counts, dtype=float)
    last = max(threshold + 2, int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 1)
    counts = counts[: min(len(counts), last)]
    top = np.log1p(counts).max() or 1.0
    levels = np.rint(np.log1p(counts) / top * (len(_BARS) - 1)).astype(int)
    chars = [_BARS[v] for v in levels]
    if threshold < len(chars):
        chars.insert(threshold + 1, "|")
    return "".join(chars)


# ------------------------------------------------------------------ worker bodies


def _find_job(source: dict[str, Any], settings: ReviewSettings, cancel: threading.Event):
    """Build the review (hash, then the verified clustering) and its histogram.

    The phases report ``(done, total)`` on the one progress bar;
    ``source["phase"]["name"]`` says which is running (``"hashing"``, then
    ``"verifying"``, then ``"comparing"``: the histogram's pass) for the
    dock's status line. Returns the Review.
    """
    phase = source.setdefault("phase", {"name": "hashing"})

    def both(progress):
        def clustering(done: int, total: int) -> None:
            phase["name"] = "verifying"
            progress(done, total)

        return {"progress": progress, "cluster_progress": clustering, "cancel": cancel}

    if source["kind"] == "csv":
        review = Review.from_dedup_csv(source["folder"], settings)
    elif source["kind"] == "folder":
        review = yield from progress_steps(
            lambda progress: Review.from_folder(source["folder"], settings, **both(progress))
        )
    else:
        review = yield from progress_steps(
            lambda progress: _frames_review(source, settings, **both(progress))
        )
    # The histogram's pass over every pair (seconds at 100,000 stills).
    phase["name"] = "comparing"
    yield from progress_steps(
        lambda progress: review.nearest_distances(progress=progress, cancel=cancel)
    )
    # The hashing and verification temporaries are freed: hand them back
    # now, in the worker, rather than leave the process at its peak.
    give_back()
    return review


def _frames_review(source, settings, *, progress, cluster_progress, cancel) -> Review:
    data = source["data"]
    reader = getattr(data, "reader", None)
    if reader is not None and source.get("path"):
        # Our video layer: stream it through a reader of its own (no cache),
        # so hashing neither fights the viewer's reader nor fills its cache.
        from napari_video_extract._reader import VideoArray
        from napari_video_extract.core.video_reader import VideoReader

        with VideoReader(source["path"], info=reader.info, cache_bytes=0) as own:
            return Review.from_frames(
                VideoArray(own),
                settings,
                time=np.asarray(reader.info.frame_times, dtype=float),
                video=str(source["path"]),
                progress=progress,
                cluster_progress=cluster_progress,
                cancel=cancel,
            )
    limits = source.get("contrast_limits")
    features = source.get("features")
    n = int(data.shape[0])
    files = _layer_files(features, n)
    if files is not None:
        # A stills layer: hash its files like the CLI; Write copies them as they are.
        return Review.from_files(
            files,
            settings,
            frame=np.asarray(features["frame"], dtype=np.int64) if "frame" in features else None,
            time=np.asarray(features["time"], dtype=float) if "time" in features else None,
            video=[str(v) for v in features["video"]] if "video" in features else None,
            progress=progress,
            cluster_progress=cluster_progress,
            cancel=cancel,
        )
    kwargs: dict[str, Any] = {"video": source["name"]}
    if features is not None and len(features) == n:
        if "frame" in features:
            kwargs["frame"] = np.asarray(features["frame"], dtype=np.int64)
        if "time" in features:
            kwargs["time"] = np.asarray(features["time"], dtype=float)
        if "video" in features:
            kwargs["video"] = [str(v) for v in features["video"]]
    return Review.from_frames(
        data,
        settings,
        to_uint8=lambda block: to_uint8(block, limits),
        progress=progress,
        cluster_progress=cluster_progress,
        cancel=cancel,
        **kwargs,
    )


def _layer_files(features: Any, n: int) -> list[Path] | None:
    """The image file of every still of a layer, when its features name them all."""
    if features is None or len(features) != n or "file" not in features:
        return None
    files = [Path(f) for f in features["file"] if isinstance(f, str) and f]
    if len(files) != n or not all(f.is_file() for f in files):
        return None
    return files


def _thumbs_job(members, box, cache: ThumbnailCache, cancel: threading.Event):
    thumbs = []
    for k, i in enumerate(members):
        if cancel.is_set():
            return None
        thumbs.append(cache.get(int(i), box))
        if k % 8 == 7:
            yield (k + 1, len(members))
    return members, thumbs


def _apply_job(func, args: tuple, kwargs: dict, cancel: threading.Event):
    return (
        yield from progress_steps(
            lambda progress: func(*args, progress=progress, cancel=cancel, **kwargs)
        )
    )


def _undo_job(folders: list[Path], cancel: threading.Event):
    from napari_video_extract.core.review_apply import undo_review

    yield (0, 1)
    return undo_review(folders)

"""napari reader: a video, or a folder of stills, as one lazy image layer.

* A video becomes a ``(frames, height, width, 3)`` layer. Opening only probes
  the file; frames are decoded when napari shows them, by a
  :class:`~napari_video_extract.core.video_reader.VideoReader` (exact frames,
  persistent decoder for stepping forward, bounded cache).
* A folder of images, or its ``frames.csv``, becomes a
  ``(stills, height, width, 3)`` layer backed by a
  :class:`~napari_video_extract.core.stills.StillStack` (listing only, images
  decoded on display through a bounded cache), in time order
  (``frames.csv``) or natural name order. Stills that ``frames.csv`` places
  in a video are drawn at their frames' positions on the video's frame axis,
  so a video layer and its stills share one slider without the stills
  crowding its first positions: evenly spaced stills by the layer's
  ``translate``/``scale``, unevenly spaced ones (head and tail) through a
  :class:`~napari_video_extract.core.frame_axis.FrameAxisStills` view (one
  slice per video frame, each the nearest still).

This module is imported by napari at start-up to register the reader, so its
top level imports nothing but numpy and the standard library: the engine is
imported when a file is actually opened. The extensions it claims are
:data:`~napari_video_extract.core.formats.VIDEO_EXTENSIONS` (a light,
stdlib-only module).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_video_extract.core.formats import is_video_name
from napari_video_extract.core.stack_index import LazyStack, leading_indices, split_key

if TYPE_CHECKING:
    from napari_video_extract.core.frame_axis import FrameAxisStills
    from napari_video_extract.core.probe import VideoInfo
    from napari_video_extract.core.stills import StillStack
    from napari_video_extract.core.video_reader import VideoReader

__all__ = ["VideoArray", "get_reader", "read_stills", "read_video"]

#: Label of the first (time) axis of the layer; the slider moves in frames.
TIME_AXIS_LABEL = "frame"
#: ``frames.csv``: the reader opens the stills it lists (same name as core.manifest's).
MANIFEST_NAME = "frames.csv"

LayerData = tuple[Any, dict, str]


class VideoArray(LazyStack):
    """A video seen as a read-only, lazy numpy-like array.

    Shape ``(frames, height, width, 3)``, dtype uint8. Indexing decodes only
    the frames asked for, through a :class:`VideoReader` (see its notes for
    the cost of random access); ``np.asarray(video_array)`` decodes all of
    them, so avoid it for long videos.

    Parameters
    ----------
    reader : VideoReader
        The open reader that supplies the frames.
    """

    def __init__(self, reader: VideoReader) -> None:
        self._reader = reader
        self.shape: tuple[int, int, int, int] = reader.shape
        self.dtype = np.dtype(np.uint8)

    @property
    def reader(self) -> VideoReader:
        """The underlying :class:`VideoReader`."""
        return self._reader

    def __repr__(self) -> str:
        return f"VideoArray(shape={self.shape}, dtype=uint8, path={str(self._reader.info.path)!r})"

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = split_key(key, self.ndim)
        if isinstance(first, int | np.integer):
            frame = self._reader.read(int(first))
            return frame[rest] if rest else frame
        indices = leading_indices(first, len(self), "frame")
        frames = self._read_many(indices)
        return frames[(slice(None), *rest)] if rest else frames

    def _read_many(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.shape[1:]), dtype=np.uint8)
        # Ascending order lets the reader stream forward instead of seeking.
        for pos in np.argsort(indices, kind="stable"):
            out[pos] = self._reader.read(int(indices[pos]))
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.uint8)
        for i, frame in enumerate(self._reader.iter()):
            out[i] = frame
        return out if dtype is None else out.astype(dtype, copy=False)


def _claims(path: Any) -> bool:
    if not isinstance(path, str | os.PathLike):
        return False
    return is_video_name(path)


def _is_stills_path(path: Any) -> bool:
    if not isinstance(path, str | os.PathLike):
        return False
    if os.path.isdir(path):
        return True
    return Path(path).name.lower() == MANIFEST_NAME and os.path.isfile(path)


def _stills_reader(path: str | os.PathLike) -> Callable[[Any], list[LayerData]] | None:
    """A reader for a folder of images or a ``frames.csv``, or None."""
    from napari_video_extract.core.stills import open_stills

    try:
        stack = open_stills(path)
    except Exception:
        return None  # unlistable folder, unreadable csv: napari may try another reader
    if len(stack) == 0:
        return None
    opened = os.path.abspath(os.fspath(path))

    def reader(path_again: Any) -> list[LayerData]:
        """Open the listed stills as one lazy RGB image layer."""
        if os.path.abspath(os.fspath(path_again)) == opened:
            return read_stills(opened, stack=stack)  # no second listing
        return read_stills(path_again)

    return reader


def get_reader(path: Any) -> Callable[[Any], list[LayerData]] | None:
    """napari reader hook: a reader function for a video or a folder of stills, else None.

    Never raises: lists of paths, other extensions, folders without images,
    and files that ffmpeg cannot open as a video all give None, so napari
    can try another reader.

    Parameters
    ----------
    path : str or PathLike or list
        What napari asks about.

    Returns
    -------
    callable or None
        A function ``path -> [(VideoArray, add_kwargs, "image")]`` (a video)
        or ``path -> [(StillStack, add_kwargs, "image")]`` (a folder of
        images or a ``frames.csv``).
    """
    if _is_stills_path(path):
        return _stills_reader(path)
    if not _claims(path):
        return None
    try:
        if not os.path.isfile(path):
            return None
        from napari_video_extract.core.errors import InputError
        from napari_video_extract.core.probe import probe

        info = probe(path)
    except InputError:
        return None
    except Exception:
        return None  # anything else too: napari must be free to try another reader
    probed = os.path.abspath(os.fspath(path))

    def reader(path_again: Any) -> list[LayerData]:
        """Open the probed video as one lazy RGB image layer."""
        if os.path.abspath(os.fspath(path_again)) == probed:
            return read_video(probed, info=info)  # no second probe
        return read_video(path_again)

    return reader


def read_video(path: str | os.PathLike, *, info: VideoInfo | None = None) -> list[LayerData]:
    """Layer data for one video: a lazy array and the layer's keyword arguments.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    info : VideoInfo, optional
        Its probe result if already known.

    Returns
    -------
    list of tuple
        ``[(VideoArray, add_kwargs, "image")]``; ``add_kwargs`` holds ``name``
        (the file name), ``rgb=True``, ``contrast_limits``, ``axis_labels``
        and ``metadata`` with ``path``, ``fps``, ``frame_times`` (seconds,
        one per frame) and ``video`` (:meth:`VideoInfo.as_dict`).

    Raises
    ------
    VideoOpenError
        The file cannot be opened as a video.
    """
    from napari_video_extract.core.video_reader import VideoReader

    video = VideoReader(path, info=info)
    info = video.info
    metadata = {
        "path": str(info.path),
        "fps": float(info.avg_fps),
        "frame_times": info.frame_times.astype(float).tolist(),
        "video": info.as_dict(),
    }
    add_kwargs = {
        "name": info.path.name,
        "rgb": True,
        # Known range: napari must not scan the video to guess it.
        "contrast_limits": [0, 255],
        "axis_labels": (TIME_AXIS_LABEL, "y", "x"),
        "metadata": metadata,
    }
    return [(VideoArray(video), add_kwargs, "image")]


def read_stills(
    path: str | os.PathLike, *, stack: StillStack | None = None, name: str | None = None
) -> list[LayerData]:
    """Layer data for a folder of stills (or its ``frames.csv``).

    Parameters
    ----------
    path : str or PathLike
        The folder, or its ``frames.csv`` (then only the stills it lists).
    stack : StillStack, optional
        The already opened stack of ``path``.
    name : str, optional
        Layer name; default: the folder's name.

    Returns
    -------
    list of tuple
        ``[(data, add_kwargs, "image")]``: ``data`` is the
        :class:`~napari_video_extract.core.stills.StillStack`, or, when the
        stills sit at uneven frames of their video, a
        :class:`~napari_video_extract.core.frame_axis.FrameAxisStills` over
        it (its ``stills``). ``add_kwargs`` holds
        ``name``, ``rgb=True``, ``contrast_limits``, ``axis_labels``, the
        frame-axis placement (``translate``, ``scale``: see
        :func:`~napari_video_extract.core.stills.frame_axis_placement`) and
        ``metadata`` with ``folder``, ``stills=True``, ``features`` (a
        :class:`~napari_video_extract.core.still_features.StillFeatures`,
        one row per still: ``time``, ``frame``, ``file``, ``video``; napari
        0.9 image layers have no features table; ``.to_pandas()`` gives a
        DataFrame) and ``frame_axis`` (``translate``, ``scale``, ``exact``).

    Raises
    ------
    OSError
        The folder cannot be listed.
    """
    from napari_video_extract.core.still_features import StillFeatures
    from napari_video_extract.core.stills import frame_axis_placement, open_stills

    path = Path(path)
    if stack is None:
        stack = open_stills(path)
    folder = path.parent if path.is_file() else path
    columns = stack.features()
    frames = columns["frame"]
    translate, scale, exact = frame_axis_placement(frames)
    data: StillStack | FrameAxisStills = stack
    if not exact and len(frames) > 1 and None not in frames and np.all(np.diff(frames) > 0):
        # One transform cannot place uneven stills: one slice per video frame can.
        from napari_video_extract.core.frame_axis import FrameAxisStills

        data = FrameAxisStills(stack, frames)
        translate, scale, exact = float(frames[0]), 1.0, True
    # napari slices the layer's first position, then, for a viewer's first
    # layer, the centre of its slider: decode those stills in the background
    # while napari builds the layer (its set-up takes longer than two decodes).
    shown = {0, (len(data) - 1) // 2}
    if data is not stack:
        shown = {int(data.still_at(i)) for i in shown}
    stack.prefetch(sorted(shown))
    # Not a pandas DataFrame: importing pandas alone took most of the time
    # budget for opening a folder (see core/still_features.py).
    features = StillFeatures(**columns)
    add_kwargs = {
        "name": name or folder.name,
        "rgb": True,
        "contrast_limits": [0, 255],  # napari must not decode every still to guess it
        "multiscale": False,  # one level: known, not guessed
        "axis_labels": (TIME_AXIS_LABEL, "y", "x"),
        "translate": (translate, 0.0, 0.0),
        "scale": (scale, 1.0, 1.0),
        "metadata": {
            "folder": str(folder),
            "stills": True,
            "features": features,
            "frame_axis": {"translate": translate, "scale": scale, "exact": exact},
        },
    }
    return [(data, add_kwargs, "image")]

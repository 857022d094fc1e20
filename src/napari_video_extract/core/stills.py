"""A folder of still images seen as one lazy ``(n, height, width, 3)`` stack.

:class:`StillStack` decodes an image only when it is indexed, through a
bounded LRU cache (a byte budget, not a count), so a viewer can scrub through
20,000 stills with flat memory. Its shape is known up front without reading
every file: the canvas size comes from ``frames.csv`` (the most common
``width x height`` it records) or else from the header of the first image
that opens. Images of another size are letterboxed into that canvas when they
are decoded (scaled to fit, centred on black), never dropped; an image that
cannot be decoded gives a black frame and is listed in
:attr:`StillStack.unreadable`.

:func:`open_stills` lists a folder (one directory scan, no per-file reads) in
time order (``frames.csv``) or natural name order, the same order as the
dedup engine (:func:`~napari_video_extract.core.image_folder.ordered_images`), and
returns the stack with one :class:`StillInfo` per image.

Pillow is imported when a stack first reads an image header or decodes, so
importing this module stays cheap; listing a folder does not import the
hashing engine.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract.core.stack_index import LazyStack, leading_indices, split_key

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "StillInfo",
    "StillStack",
    "frame_axis_placement",
    "open_stills",
]

#: Default decoded-image cache of a stack: about 90 720p stills.
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
#: ``np.asarray(stack)`` refuses to build arrays larger than this by default.
DEFAULT_MAX_ARRAY_BYTES = 2 * 1024**3
#: Images opened (headers only) to find a canvas size when nothing records it.
_HEADER_TRIES = 16


@dataclass(frozen=True)
class StillInfo:
    """What is known about one still without decoding it.

    ``time`` (seconds) and ``frame`` (0-based video frame) come from
    ``frames.csv`` and are ``None`` for an image it does not list.
    """

    file: str
    time: float | None = None
    frame: int | None = None
    video: str = ""


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` as displayed (EXIF rotation applied), from the header only."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            with contextlib.suppress(Exception):  # a broken EXIF block: stored orientation
                if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    width, height = height, width
    except Exception:  # unreadable: the caller tries the next file
        return None
    return (width, height) if width > 0 and height > 0 else None


def _decode(path: Path, width: int, height: int) -> np.ndarray:
    """Decode ``path`` as ``(height, width, 3)`` uint8, letterboxed if its size differs."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        if image.format == "JPEG" and image.mode in ("L", "RGB", "CMYK", "YCbCr"):
            # Decode a large JPEG at 1/2..1/8 scale when that still covers the canvas.
            image.draft("RGB", (width, height))
        image.load()
        with contextlib.suppress(Exception):  # a broken EXIF block keeps the stored orientation
            # In place: without an orientation tag nothing happens (not a 2.8 MB copy).
            ImageOps.exif_transpose(image, in_place=True)
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # no needless copy
    if rgb.size == (width, height):
        return np.asarray(rgb)
    scale = min(width / rgb.width, height / rgb.height)
    fit = (
        max(1, min(width, round(rgb.width * scale))),
        max(1, min(height, round(rgb.height * scale))),
    )
    resized = np.asarray(rgb.resize(fit, Image.Resampling.BILINEAR))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - fit[1]) // 2, (width - fit[0]) // 2
    canvas[top : top + fit[1], left : left + fit[0]] = resized
    return canvas


class StillStack(LazyStack):
    """Still images as a read-only, lazy numpy-like array.

    Shape ``(n, height, width, 3)``, dtype uint8. Indexing decodes only the
    images asked for (int, slice, index array or a tuple of those, like a
    numpy or dask array); decoded images are kept in an LRU cache bounded in
    bytes. Safe to index from several threads at once.

    Parameters
    ----------
    files : sequence of path
        The images, in stack order.
    size : (int, int), optional
        ``(width, height)`` of the canvas. Default: the header of the first
        image that opens (at most 16 are tried); ``(1, 1)`` if none does.
    cache_bytes : int, optional
        Budget of the decoded-image cache (at least one image is kept).
    max_array_bytes : int, optional
        ``np.asarray(stack)`` raises :class:`MemoryError` above this size.
    infos : sequence of StillInfo, optional
        What is known of each still (one per file); default: only the file.

    Notes
    -----
    An image that cannot be decoded (missing, truncated, not an image, too
    large for Pillow) reads as black and its index is added to
    :attr:`unreadable`; nothing raises for a bad file.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        *,
        size: tuple[int, int] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
        infos: Sequence[StillInfo] | None = None,
    ) -> None:
        # Kept as given (Path or str): building or re-parsing 2,000 Paths cost
        # more than listing the folder; :attr:`files` makes Paths when asked.
        self._files = list(files)
        self._paths: list[Path] | None = None
        # Without infos, none are built until asked for: 2,000 StillInfos
        # that say only the file cost more than the rest of opening the stack.
        self._infos: tuple[StillInfo, ...] | None = None
        if infos is not None:
            if len(infos) != len(self._files):
                raise ValueError(f"{len(infos)} infos for {len(self._files)} files")
            self._infos = tuple(infos)
        if size is None:
            size = next(
                (s for s in map(_header_size, self._files[:_HEADER_TRIES]) if s is not None),
                (1, 1),
            )
        width, height = int(size[0]), int(size[1])
        if width < 1 or height < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        self.shape: tuple[int, int, int, int] = (len(self._files), height, width, 3)
        self.dtype = np.dtype(np.uint8)
        self._frame_bytes = height * width * 3
        self._cache_bytes = max(int(cache_bytes), self._frame_bytes)
        self._max_array_bytes = int(max_array_bytes)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._unreadable: dict[int, str] = {}
        # index -> set when the thread decoding it has cached it: a second
        # reader waits for that decode instead of decoding the image again.
        self._decoding: dict[int, threading.Event] = {}

    # ------------------------------------------------------------ array protocol

    @property
    def files(self) -> list[Path]:
        """The image files, in stack order."""
        if self._paths is None:
            self._paths = [f if isinstance(f, Path) else Path(f) for f in self._files]
        return list(self._paths)

    @property
    def infos(self) -> tuple[StillInfo, ...]:
        """What is known of each still, in stack order (one :class:`StillInfo` per file)."""
        if self._infos is None:
            self._infos = tuple(StillInfo(file=os.fspath(f)) for f in self._files)
        return self._infos

    def features(self) -> dict[str, list]:
        """Per-still columns ``time``, ``frame``, ``file``, ``video`` (``None`` if unknown)."""
        if self._infos is None:  # only the files are known: no StillInfo needed
            n = len(self._files)
            files = [os.fspath(f) for f in self._files]
            return {"time": [None] * n, "frame": [None] * n, "file": files, "video": [""] * n}
        return {
            "time": [i.time for i in self._infos],
            "frame": [i.frame for i in self._infos],
            "file": [i.file for i in self._infos],
            "video": [i.video for i in self._infos],
        }

    @property
    def unreadable(self) -> dict[int, str]:
        """``index -> reason`` of the images that could not be decoded so far."""
        with self._lock:
            return dict(self._unreadable)

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded images held in the cache now."""
        with self._lock:
            return len(self._cache) * self._frame_bytes

    def __repr__(self) -> str:
        return f"StillStack(shape={self.shape}, dtype=uint8)"

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = split_key(key, self.ndim)
        if isinstance(first, int | np.integer):
            index = int(first)
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} stills")
            image = self.image(index % len(self))
            return image[rest] if rest else image
        indices = leading_indices(first, len(self), "still")
        if len(indices) == 1:  # napari's slice of one still: a view of the cached image, no copy
            image = self.image(int(indices[0]))[np.newaxis]
            return image[(slice(None), *rest)] if rest else image
        out = np.empty((len(indices), *self.shape[1:]), dtype=np.uint8)
        for pos, index in enumerate(indices):
            out[pos] = self.image(int(index))
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if self.nbytes > self._max_array_bytes:
            raise MemoryError(
                f"{len(self)} stills of {self.shape[2]}x{self.shape[1]} would take "
                f"{self.nbytes / 1e9:.1f} GB in memory; index the stack instead"
            )
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    # ------------------------------------------------------------------ decoding

    def image(self, index: int) -> np.ndarray:
        """Still ``index`` as a read-only ``(height, width, 3)`` uint8 array.

        Parameters
        ----------
        index : int
            0-based position in the stack.

        Returns
        -------
        numpy.ndarray
            The decoded (and, if needed, letterboxed) image; black if the
            file cannot be decoded.
        """
        while True:
            with self._lock:
                cached = self._cache.get(index)
                if cached is not None:
                    self._cache.move_to_end(index)
                    return cached
                running = self._decoding.get(index)
                if running is None:
                    done = self._decoding[index] = threading.Event()
                    break
            running.wait()  # another thread is decoding it (a prefetch): take its result
        _, height, width, _ = self.shape
        try:  # decoded outside the lock, so other images can be read meanwhile
            try:
                image = _decode(self._files[index], width, height)
                reason = None
            except Exception as exc:  # any bad file: a black frame, listed, never a crash
                image = np.zeros((height, width, 3), dtype=np.uint8)
                reason = str(exc) or type(exc).__name__
            image.flags.writeable = False
            with self._lock:
                if reason is not None:
                    self._unreadable[index] = reason
                self._cache[index] = image
                self._cache.move_to_end(index)
                while len(self._cache) * self._frame_bytes > self._cache_bytes:
                    self._cache.popitem(last=False)
        finally:  # waiting threads wake up even if this one was interrupted
            with self._lock:
                del self._decoding[index]
            done.set()
        return image

    def prefetch(self, indices: Sequence[int]) -> threading.Thread:
        """Decode ``indices`` into the cache in a background thread.

        The reader asks for the stills napari slices first, so that their
        decoding (Pillow releases the GIL while it decodes) overlaps napari's
        own set-up of the layer instead of following it. A still being
        prefetched is decoded once: :meth:`image` waits for it.

        Parameters
        ----------
        indices : sequence of int
            0-based positions, in the order to decode them; out-of-range ones
            are ignored.

        Returns
        -------
        threading.Thread
            The (daemon) thread, already started.
        """
        wanted = [int(i) for i in indices if 0 <= int(i) < len(self)]

        def decode() -> None:
            for index in wanted:
                self.image(index)

        thread = threading.Thread(target=decode, name="still-prefetch", daemon=True)
        thread.start()
        return thread

    def clear_cache(self) -> None:
        """Drop every decoded image."""
        with self._lock:
            self._cache.clear()


def _is_manifest(path: Path) -> bool:
    return path.name.lower() == "frames.csv"


def open_stills(
    path: str | os.PathLike[str],
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> StillStack:
    """Open a folder of stills (or its ``frames.csv``) as a lazy stack.

    Parameters
    ----------
    path : path
        A folder of images, or a ``frames.csv`` file: then only the images it
        lists (and that exist) are taken.
    cache_bytes : int, optional
        Budget of the stack's decoded-image cache.

    Returns
    -------
    StillStack
        The images in time order (``frames.csv``) then, for a folder, the
        images it does not list in natural name order, with one
        :class:`StillInfo` per still in :attr:`StillStack.infos`. Hidden
        files, sub-folders and symbolic links are left out.

    Raises
    ------
    OSError
        The folder cannot be listed.
    """
    from napari_video_extract.core.image_folder import file_name, scan_folder

    path = Path(path)
    only_listed = path.is_file() and _is_manifest(path)
    folder = path.parent if only_listed else path
    records = {}
    if only_listed or (folder / "frames.csv").is_file():  # else no need to import its reader
        from napari_video_extract.core.manifest import read_manifest

        records = {file_name(r.file): r for r in read_manifest(folder)}
    scan = scan_folder(folder)
    # File names and strings, not Paths: 2,000 Paths cost more than the listing.
    pairs = zip(scan.names, scan.image_strings(), strict=True)
    if only_listed:
        pairs = ((name, image) for name, image in pairs if name in records)
    if not records:  # nothing but the files is known: the stack's infos say that
        return StillStack([image for _, image in pairs], cache_bytes=cache_bytes)
    images, infos = [], []
    for name, image in pairs:
        images.append(image)
        rec = records.get(name)
        if rec is None:
            infos.append(StillInfo(file=image))
        else:
            infos.append(StillInfo(file=image, time=rec.time, frame=rec.frame, video=rec.video))
    sizes = Counter((r.width, r.height) for r in records.values() if r.width > 0 and r.height > 0)
    size = sizes.most_common(1)[0][0] if sizes else None
    return StillStack(images, size=size, cache_bytes=cache_bytes, infos=infos)


def frame_axis_placement(frames: Sequence[int | None]) -> tuple[float, float, bool]:
    """Where a stack of stills sits on its video's frame axis.

    Still ``i`` is drawn at axis position ``translate + i * scale``; a viewer
    that shows the video (one position per frame) next to the stills then
    shows, at each video frame, the still nearest to it, and the stills span
    the frames they were taken from instead of the first ``n`` positions.

    Parameters
    ----------
    frames : sequence of int or None
        The video frame of each still, in stack order.

    Returns
    -------
    translate : float
        Position of the first still (its frame), 0 when frames are unknown.
    scale : float
        Spacing of the stills in frames, 1 when frames are unknown.
    exact : bool
        Whether every still sits within one frame of its own frame (evenly
        spaced stills, e.g. an interval extraction). Unevenly spaced stills
        (head and tail) are spread evenly between the first and last frame
        (the reader shows them through
        :class:`~napari_video_extract.core.frame_axis.FrameAxisStills`).
        ``False`` when frames are unknown, not increasing, or fewer than two.
    """
    if len(frames) < 2 or any(f is None for f in frames):
        first = frames[0] if len(frames) == 1 and frames[0] is not None else 0
        return float(first), 1.0, len(frames) == 1 and frames[0] is not None
    values = np.asarray(frames, dtype=float)
    if not np.all(np.diff(values) > 0):
        return 0.0, 1.0, False
    scale = (values[-1] - values[0]) / (len(values) - 1)
    placed = values[0] + scale * np.arange(len(values))
    return float(values[0]), float(scale), bool(np.abs(placed - values).max() <= 1.0)

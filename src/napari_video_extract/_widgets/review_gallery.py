"""The cluster gallery: every member of one cluster side by side, the keeper marked.

A cluster is drawn as one RGB mosaic (an napari ``Image`` layer): one tile per
member in capture order, each a thumbnail letterboxed in its tile, framed
thick green for the cluster's keeper, thin green for another kept member and
orange for a duplicate; the selected member gets a white outer ring. Tiles
shrink as clusters grow (a 574-member cluster is a 24 x 24 grid of 80 x 45
tiles, 1920 x 1080 pixels), so memory is bounded by the mosaic, not the
cluster's full-size images. Thumbnails are cached (bounded by count).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

__all__ = ["Gallery", "ThumbnailCache", "file_thumbnail", "frame_thumbnail"]

#: Frame colours (RGB 0-255): keeper, other kept member, duplicate, selection ring.
KEEPER_RGB = (26, 217, 51)
KEPT_RGB = (26, 217, 51)
DUPLICATE_RGB = (255, 89, 0)
SELECTED_RGB = (255, 255, 255)
_BACKGROUND = 40
_MARGIN = 6  # pixels around each thumbnail: room for the frame and the ring


def tile_size(n: int) -> tuple[int, int]:
    """(height, width) of a tile for a cluster of ``n`` members (16:9 thumbnails)."""
    for limit, width in ((4, 320), (16, 240), (64, 160), (256, 112)):
        if n <= limit:
            return (width * 9 // 16, width)
    return (45, 80)


def file_thumbnail(path, box: tuple[int, int]) -> np.ndarray:
    """An image file as an RGB uint8 thumbnail fitting ``box`` (height, width).

    JPEGs are decoded at reduced scale (draft); EXIF orientation is applied.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (box[1], box[0]))
        image.load()
        with contextlib.suppress(ValueError, TypeError, KeyError, SyntaxError, OSError):
            image = ImageOps.exif_transpose(image)
        image = image.convert("RGB")
        image.thumbnail((box[1], box[0]))
        return np.asarray(image)


def frame_thumbnail(frame: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """An (H, W[, C]) uint8 frame as an RGB thumbnail fitting ``box`` (height, width)."""
    from PIL import Image

    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[..., :3]
    image = Image.fromarray(np.ascontiguousarray(frame)).convert("RGB")
    image.thumbnail((box[1], box[0]))
    return np.asarray(image)


class ThumbnailCache:
    """Thumbnails by item index and size, least recently used dropped past a byte budget.

    Thread-safe: the gallery's loader runs in a worker thread, and a newer
    cluster's loader may start before an older one has stopped.

    Parameters
    ----------
    load : callable(index, box) -> ndarray
        Makes the thumbnail of one item.
    max_bytes : int, optional
        Pixels kept (64 MB: about 5,000 tiles of 80 x 45).
    """

    def __init__(
        self, load: Callable[[int, tuple[int, int]], np.ndarray], max_bytes: int = 64 << 20
    ) -> None:
        self._load = load
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[int, tuple[int, int]], np.ndarray] = OrderedDict()

    def get(self, index: int, box: tuple[int, int]) -> np.ndarray:
        """The thumbnail of ``index`` fitting ``box``; a grey tile if it cannot be read."""
        key = (index, box)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        try:
            thumb = self._load(index, box)
        except (OSError, ValueError, IndexError):
            thumb = np.full((box[0] // 2, box[1] // 2, 3), 90, np.uint8)
        with self._lock:
            if key not in self._items:
                self._items[key] = thumb
                self._bytes += thumb.nbytes
            while self._bytes > self._max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return thumb


class Gallery:
    """The mosaic of one cluster and the member under a pixel.

    Parameters
    ----------
    members : ndarray of int
        Item indices, in capture order.
    thumbs : list of ndarray
        Their thumbnails (fitting :func:`tile_size`).
    """

    def __init__(self, members: np.ndarray, thumbs: list[np.ndarray]) -> None:
        self.members = np.asarray(members)
        self.n = len(self.members)
        self.tile = tile_size(self.n)
        self.cols = max(1, math.ceil(math.sqrt(self.n)))
        self.rows = max(1, math.ceil(self.n / self.cols))
        th, tw = self.tile[0] + 2 * _MARGIN, self.tile[1] + 2 * _MARGIN
        self.cell = (th, tw)
        self._base = np.full((self.rows * th, self.cols * tw, 3), _BACKGROUND, np.uint8)
        for k, thumb in enumerate(thumbs):
            y0, x0 = self.origin(k)
            h, w = thumb.shape[:2]
            oy, ox = _MARGIN + (self.tile[0] - h) // 2, _MARGIN + (self.tile[1] - w) // 2
            self._base[y0 + oy : y0 + oy + h, x0 + ox : x0 + ox + w] = thumb[..., :3]

    def origin(self, position: int) -> tuple[int, int]:
        """Top-left pixel of the cell of member ``position``."""
        r, c = divmod(position, self.cols)
        return r * self.cell[0], c * self.cell[1]

    def position_at(self, y: float, x: float) -> int | None:
        """Member position (0-based, in :attr:`members`) under pixel (y, x), or None."""
        if y < 0 or x < 0:
            return None
        r, c = int(y // self.cell[0]), int(x // self.cell[1])
        if r >= self.rows or c >= self.cols:
            return None
        k = r * self.cols + c
        return k if k < self.n else None

    def render(self, kept: np.ndarray, keeper: int, selected: int | None) -> np.ndarray:
        """The mosaic with frames for the current decisions (``kept`` per item index)."""
        out = self._base.copy()
        for k, i in enumerate(self.members):
            y0, x0 = self.origin(k)
            h, w = self.cell
            if int(i) == keeper:
                color, width = KEEPER_RGB, 5
            elif kept[int(i)]:
                color, width = KEPT_RGB, 2
            else:
                color, width = DUPLICATE_RGB, 3
            _frame(out, y0 + 2, x0 + 2, h - 4, w - 4, width, color)
            if selected is not None and int(i) == selected:
                _frame(out, y0, x0, h, w, 2, SELECTED_RGB)
        return out


def _frame(out: np.ndarray, y: int, x: int, h: int, w: int, width: int, rgb) -> None:
    out[y : y + width, x : x + w] = rgb
    out[y + h - width : y + h, x : x + w] = rgb
    out[y : y + h, x : x + width] = rgb
    out[y : y + h, x + w - width : x + w] = rgb

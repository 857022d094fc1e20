"""Stills seen on their video's frame axis: one slice per video frame.

napari places a layer's slices on an axis by one ``translate`` and one
``scale``, so only evenly spaced stills (an interval extraction) can sit at
their own frames that way. Stills taken at uneven frames (head and tail, the
sharpest frame of each window) are shown through :class:`FrameAxisStills`
instead: a lazy stack with one slice per frame from the first still's frame to
the last one's, where every slice is the still nearest to that frame. Each
still then sits exactly at its frame, and nothing is decoded or copied: slice
``k`` is the cached image of one still.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_video_extract.core.stack_index import LazyStack, leading_indices, split_key

if TYPE_CHECKING:
    from napari_video_extract.core.stills import StillInfo, StillStack

__all__ = ["FrameAxisStills"]


class FrameAxisStills(LazyStack):
    """A stack of stills as a lazy ``(frames, height, width, 3)`` array on the frame axis.

    Slice ``k`` shows the still nearest to frame ``first_frame + k`` (the
    earlier one at a tie), so still ``i`` is slice ``frames[i] - first_frame``.

    Parameters
    ----------
    stills : StillStack
        The stills, in stack order.
    frames : sequence of int
        The video frame of each still, strictly increasing.

    Raises
    ------
    ValueError
        ``frames`` is empty, not one per still, or not strictly increasing.
    """

    def __init__(self, stills: StillStack, frames: Sequence[int]) -> None:
        values = np.asarray(frames, dtype=np.int64)
        if values.ndim != 1 or len(values) != len(stills) or not len(values):
            raise ValueError(f"{len(values)} frames for {len(stills)} stills")
        if np.any(np.diff(values) <= 0):
            raise ValueError("frames must be strictly increasing")
        self.stills = stills
        self.frames = values
        self.first_frame = int(values[0])
        # A frame past the midpoint between two stills belongs to the later one.
        self._midpoints = (values[:-1] + values[1:]) / 2
        self.shape: tuple[int, ...] = (int(values[-1] - values[0]) + 1, *stills.shape[1:])
        self.dtype = stills.dtype

    # The still stack's own view of itself, for code that works on stills.
    @property
    def files(self) -> list[Path]:
        """The image files, in stack order."""
        return self.stills.files

    @property
    def infos(self) -> tuple[StillInfo, ...]:
        """What is known of each still."""
        return self.stills.infos

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded images held in the stills' cache now."""
        return self.stills.cached_bytes

    def __repr__(self) -> str:
        return f"FrameAxisStills(shape={self.shape}, stills={len(self.stills)})"

    def still_at(self, index: int | np.ndarray) -> Any:
        """The still (stack index) shown at slice ``index`` (an int or an int array)."""
        return np.searchsorted(self._midpoints, index, side="left")

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = split_key(key, self.ndim)
        if isinstance(first, int | np.integer):
            index = int(first)
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} frames")
            image = self.stills.image(int(self.still_at(index % len(self))))
            return image[rest] if rest else image
        indices = leading_indices(first, len(self), "frame")
        return self.stills[(self.still_at(indices), *rest)]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        from napari_video_extract.core.stills import DEFAULT_MAX_ARRAY_BYTES

        if self.size > DEFAULT_MAX_ARRAY_BYTES:
            raise MemoryError(
                f"{len(self)} frames of {self.shape[2]}x{self.shape[1]} would take "
                f"{self.size / 1e9:.1f} GB in memory; index the stack instead"
            )
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

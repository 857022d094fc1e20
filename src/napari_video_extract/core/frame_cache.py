"""The reader's frame cache: least recently used, bounded in bytes.

Entries are RGB frames, or (PyAV) frames as the decoder gave them, which
the read that wants them converts (see
:class:`~napari_video_extract.core.rgb_frames.UnconvertedFrame`). Each entry
counts for an RGB frame's bytes, or for the decoder frame's if that is
bigger (e.g. 10-bit 4:4:4), so the bound holds for both.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from napari_video_extract.core.rgb_frames import UnconvertedFrame

__all__ = ["FrameCache"]

Entry = np.ndarray | UnconvertedFrame


class FrameCache:
    """Frames by index, the least recently used dropped first past ``limit`` bytes.

    Not thread-safe: :class:`~napari_video_extract.core.video_reader.VideoReader`
    holds its lock around every call.

    Parameters
    ----------
    limit : int
        Upper bound in bytes (``0``: nothing is kept).
    frame_bytes : int
        Bytes of one RGB frame of the video.
    """

    def __init__(self, limit: int, frame_bytes: int) -> None:
        self.limit = max(0, int(limit))
        self._frame_bytes = frame_bytes
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self.nbytes = 0  #: bytes the entries count for now

    def __len__(self) -> int:
        return len(self._entries)

    def _bytes(self, entry: Entry) -> int:
        if isinstance(entry, UnconvertedFrame):
            return max(self._frame_bytes, entry.nbytes)
        return self._frame_bytes

    def get(self, i: int) -> Entry | None:
        """The entry of frame ``i`` (now the most recently used), or None."""
        entry = self._entries.get(i)
        if entry is not None:
            self._entries.move_to_end(i)
        return entry

    def put(self, i: int, entry: Entry) -> None:
        """Keep ``entry`` as frame ``i``, dropping the least recently used past the bound."""
        if self._frame_bytes > self.limit:
            return
        previous = self._entries.pop(i, None)
        if previous is not None:
            self.nbytes -= self._bytes(previous)
        self._entries[i] = entry
        self.nbytes += self._bytes(entry)
        while self.nbytes > self.limit and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self.nbytes -= self._bytes(dropped)

    def replace(self, i: int, old: Entry, new: Entry) -> None:
        """Put ``new`` in ``old``'s place (same recency) if frame ``i`` still is ``old``."""
        if self._entries.get(i) is old:
            self.nbytes += self._bytes(new) - self._bytes(old)
            self._entries[i] = new

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self.nbytes = 0

"""The frame-source interface: decoded frames, in display order, from a keyframe.

Every decoder the engine uses (the ffmpeg executable in
:mod:`.ffmpeg_source`, PyAV in process in :mod:`.pyav_source`) is a
:class:`FrameSource`: started at a keyframe, optionally told which frames are
wanted, it yields :class:`DecodedFrame` objects identified by timestamp
against the probe's frame table (never by counting), so a frame is never
taken for another. Extraction (:func:`~napari_video_extract.core.decode.decode_frames`),
the reader and the Dask workers (through extraction) all decode through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["STALL_TIMEOUT_SECONDS", "DecodedFrame", "FrameSource"]

#: A decoder that makes the consumer wait this long for a frame is considered
#: hung. Only waiting counts: a slow consumer (disk, callback) is not a stall.
STALL_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame.

    Attributes
    ----------
    index : int
        0-based index in display order.
    time : float
        Presentation time in seconds relative to the first frame.
    image : numpy.ndarray
        ``(height, width, 3)`` uint8 RGB, upright (rotation applied).
    """

    index: int
    time: float
    image: np.ndarray


@runtime_checkable
class FrameSource(Protocol):
    """A decoder running forward from a keyframe.

    Iterating yields :class:`DecodedFrame` objects in display order: every
    frame from ``first`` on, or (when the source was given ``targets``) the
    wanted frames, possibly among others the caller ignores. A source may
    leave out frames it was not asked for; it never gives a frame under
    another frame's index.

    Attributes
    ----------
    frames_decoded : int
        Frames the decoder really produced so far (frames it skipped without
        decoding are not counted): what the run cost.
    """

    @property
    def frames_decoded(self) -> int: ...

    def __iter__(self) -> Iterator[DecodedFrame]: ...

    def __next__(self) -> DecodedFrame: ...

    def error_text(self) -> str:
        """Why the source ended early (empty if it did not), for messages only."""
        ...

    def abort(self) -> None:
        """Stop from any thread; the reading thread sees the end. The owner still closes."""
        ...

    def close(self) -> None:
        """Release the decoder (idempotent)."""
        ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...

"""Per-still columns of a stills layer (time, frame, file, video), without pandas.

napari 0.9 ``Image`` layers have no ``features`` table, so a stills layer
carries one of these in ``layer.metadata["features"]``. It reads like the
few parts of a :class:`pandas.DataFrame` the plugin uses (``len`` is the
number of stills, ``"time" in table``, ``table["time"]`` is a column), with
numpy columns: importing pandas took 0.6 s of the 1 s budget for opening a
folder of stills in a fresh viewer, and nothing on that path needs it.
:meth:`StillFeatures.to_pandas` gives a DataFrame for notebooks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "StillFeatures"]

#: The columns, in order.
COLUMNS = ("time", "frame", "file", "video")


class StillFeatures:
    """One row per still: ``time`` (s), ``frame`` (video frame), ``file``, ``video``.

    Parameters
    ----------
    time : sequence of float or None
        Seconds into the video; ``None`` (stored as NaN) when unknown.
    frame : sequence of int or None
        0-based video frame; ``None`` (stored as -1) when unknown.
    file : sequence of str
        The image file of each still.
    video : sequence of str
        The video each still comes from (``""`` when unknown).

    Raises
    ------
    ValueError
        The columns differ in length.
    """

    columns = COLUMNS

    def __init__(
        self,
        *,
        time: Sequence[float | None],
        frame: Sequence[int | None],
        file: Sequence[str],
        video: Sequence[str],
    ) -> None:
        lengths = {len(time), len(frame), len(file), len(video)}
        if len(lengths) != 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        self._columns: dict[str, np.ndarray] = {
            "time": np.array([np.nan if t is None else t for t in time], dtype=float),
            "frame": np.array([-1 if f is None else f for f in frame], dtype=np.int64),
            "file": np.array(list(file), dtype=object),
            "video": np.array(list(video), dtype=object),
        }
        for column in self._columns.values():
            column.flags.writeable = False

    def __len__(self) -> int:
        return len(self._columns["time"])

    def __contains__(self, column: object) -> bool:
        return column in self._columns

    def __getitem__(self, column: str) -> np.ndarray:
        """The column ``column`` (read-only numpy array)."""
        try:
            return self._columns[column]
        except KeyError:
            raise KeyError(f"no column {column!r}; columns: {', '.join(COLUMNS)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(COLUMNS)

    def __repr__(self) -> str:
        return f"StillFeatures({len(self)} stills; columns {', '.join(COLUMNS)})"

    def row(self, index: int) -> dict[str, Any]:
        """Still ``index`` as ``{column: value}`` (``None`` for an unknown time or frame)."""
        time = float(self._columns["time"][index])
        frame = int(self._columns["frame"][index])
        return {
            "time": None if np.isnan(time) else time,
            "frame": None if frame < 0 else frame,
            "file": str(self._columns["file"][index]),
            "video": str(self._columns["video"][index]),
        }

    def to_pandas(self) -> Any:
        """The table as a :class:`pandas.DataFrame` (imports pandas)."""
        import pandas as pd

        frame = pd.array(
            [None if f < 0 else int(f) for f in self._columns["frame"]], dtype="Int64"
        )
        return pd.DataFrame(
            {
                "time": self._columns["time"],
                "frame": frame,
                "file": self._columns["file"],
                "video": self._columns["video"],
            },
            columns=list(COLUMNS),
        )

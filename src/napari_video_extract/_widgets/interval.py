"""Interval extraction dock widget: one still every N seconds."""

from __future__ import annotations

from magicgui.widgets import FloatSpinBox, LineEdit

from napari_video_extract._widgets.extraction import _ExtractionWidget
from napari_video_extract.core.extract import Interval
from napari_video_extract.core.sampling import parse_time

__all__ = ["IntervalExtractionWidget"]


class IntervalExtractionWidget(_ExtractionWidget):
    """One still every N seconds of a video layer, a video file or a folder of videos.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer the stills layers are added to (injected by napari).
    """

    _title = "interval extraction"

    def _sampling_widgets(self) -> list:
        self.every = FloatSpinBox(
            label="every (s)", value=1.0, min=0.001, max=1e6, step=0.5, tooltip="seconds"
        )
        self.start_time = LineEdit(
            label="start", value="0", tooltip="seconds (12.5) or HH:MM:SS.mmm"
        )
        self.end_time = LineEdit(
            label="end", value="", tooltip="empty: end of the video; seconds or HH:MM:SS.mmm"
        )
        return [self.every, self.start_time, self.end_time]

    def _spec(self) -> Interval:
        start = parse_time(self.start_time.value.strip() or 0)
        end_text = self.end_time.value.strip()
        end = parse_time(end_text) if end_text else None
        return Interval(every=float(self.every.value), start=start, end=end)  # checks itself

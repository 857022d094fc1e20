"""Credits extraction dock widget: stills from the first and/or last seconds."""

from __future__ import annotations

from magicgui.widgets import FloatSpinBox, LineEdit

from napari_video_extract._widgets.extraction import _ExtractionWidget
from napari_video_extract.core.extract import HeadTail
from napari_video_extract.core.sampling import parse_time

__all__ = ["CreditsExtractionWidget"]


class CreditsExtractionWidget(_ExtractionWidget):
    """Stills from the first and/or last seconds only (openings, end credits).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer the stills layers are added to (injected by napari).
    """

    _title = "credits extraction"

    def _sampling_widgets(self) -> list:
        self.head = LineEdit(
            label="head", value="0", tooltip="seconds from the start (or HH:MM:SS.mmm)"
        )
        self.tail = LineEdit(
            label="tail", value="60", tooltip="seconds before the end (or HH:MM:SS.mmm)"
        )
        self.every = FloatSpinBox(label="every (s)", value=1.0, min=0.001, max=1e6, step=0.5)
        return [self.head, self.tail, self.every]

    def _spec(self) -> HeadTail:
        head = parse_time(self.head.value.strip() or 0)
        tail = parse_time(self.tail.value.strip() or 0)
        return HeadTail(head=head, tail=tail, every=float(self.every.value))  # checks itself

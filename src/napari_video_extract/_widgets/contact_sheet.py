"""Contact sheet dock widget: save one image of a stills layer's stills with their times.

The sheet is written by
:func:`~napari_video_extract.core.contact_sheet.write_contact_sheet` (the
same function as ``napari-video-extract sheet``) for the folder the layer
shows, in a worker thread with a progress bar and a Cancel button (closing
the dock cancels too: :class:`~napari_video_extract._widgets.worker.DockRun`);
it goes beside the folder unless an output file is chosen, and never over a
file this tool did not write.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox

from napari_video_extract._widgets._common import _path_value, _show_error, _show_info
from napari_video_extract._widgets.stills_view import is_stills_layer
from napari_video_extract._widgets.worker import DockRun, progress_steps
from napari_video_extract.core.errors import InputError

if TYPE_CHECKING:
    import napari
    from napari_video_extract.core.contact_sheet import ContactSheet

__all__ = ["ContactSheetWidget"]


def _sheet_job(
    folder: Path, options: dict[str, Any], cancel: threading.Event
) -> Iterator[tuple[int, int]]:
    """Worker body: yields ``(done, total)`` progress, returns the :class:`ContactSheet`."""
    from napari_video_extract.core.contact_sheet import write_contact_sheet

    return (
        yield from progress_steps(
            lambda progress: write_contact_sheet(
                folder, progress=progress, cancel=cancel, **options
            )
        )
    )


class ContactSheetWidget(Container):
    """Save a contact sheet of a stills layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose stills layers are offered (injected by napari).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.sheet: ContactSheet | None = None
        self.stills_layer = ComboBox(label="stills layer", choices=self._layer_choices)
        self.columns = SpinBox(label="columns", value=5, min=1, max=50)
        self.sheet_width = SpinBox(label="width (px)", value=1600, min=64, max=20000, step=100)
        self.fmt = ComboBox(label="format", choices=["jpg", "png"], value="jpg")
        self.output = FileEdit(
            label="output file",
            mode="w",
            tooltip="empty: <folder>_contact_sheet.<format> beside the stills folder",
        )
        self.save_button = PushButton(text="Save contact sheet")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(value="")
        self.extend(
            [
                self.stills_layer,
                self.columns,
                self.sheet_width,
                self.fmt,
                self.output,
                self.save_button,
                self.cancel_button,
                self.progress_bar,
                self.status,
            ]
        )
        self.save_button.clicked.connect(self.save)
        self.run = DockRun(self.native, self.progress_bar, [self.save_button], self.cancel_button)
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)

    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self._viewer.layers if is_stills_layer(layer)]

    def _refresh(self, _event: Any = None) -> None:
        with contextlib.suppress(RuntimeError):  # widget already deleted
            self.stills_layer.reset_choices()

    @property
    def running(self) -> bool:
        """Whether a sheet is being written."""
        return self.run.running

    def save(self) -> None:
        """Write the sheet of the chosen layer's folder in a worker thread."""
        if self.running:
            return
        layer = self.stills_layer.value
        if layer is None or not layer.metadata.get("folder"):
            self.status.value = "error: choose a stills layer"
            _show_error("choose a stills layer (open a folder of stills or extract some)")
            return
        folder = Path(layer.metadata["folder"])
        video = layer.metadata.get("video")
        options: dict[str, Any] = {
            "columns": int(self.columns.value),
            "width": max(int(self.sheet_width.value), 64 * int(self.columns.value)),
            "fmt": self.fmt.value,
            "output": _path_value(self.output),
            "video_search": [Path(video).parent] if video else [],
        }
        self.sheet = None
        self.status.value = f"writing the contact sheet of {folder.name}..."
        self.run.start(
            _sheet_job, folder, options, on_return=self._on_sheet, on_error=self._on_error
        )

    def _on_sheet(self, sheet: ContactSheet) -> None:
        self.sheet = sheet
        shown = len(sheet.files)
        of = "" if shown == sheet.total else f" of {sheet.total}"
        self.status.value = f"saved {sheet.path} ({shown}{of} stills)"
        _show_info(f"contact sheet saved: {sheet.path}")

    def _on_error(self, exc: Exception) -> None:
        if self.run.cancel_event.is_set():
            self.status.value = "cancelled: no sheet written"
            return
        message = str(exc) if isinstance(exc, InputError | ValueError) else f"{exc!r}"
        self.status.value = f"error: {message}"
        _show_error(message)

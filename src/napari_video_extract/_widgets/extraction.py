"""The shared base of the extraction widgets: source, output, run/cancel, stills layers.

* Work runs in a :func:`napari.qt.threading.create_worker` thread through
  :func:`~napari_video_extract.core.extract.extract_video`, one video after
  the other; a video that fails (bad file, unwritable folder, any
  ``OSError``) is one error line naming it and the batch goes on.
* Progress is shown in the widget itself (a progress bar and the status
  line, per phase: extracting, listing the stills); Cancel, or closing the
  dock, stops the run between two stills.
* The stills of a video become one lazy layer
  (:class:`~napari_video_extract.core.stills.StillStack`, through the
  reader's :func:`~napari_video_extract._reader.read_stills`): nothing is read
  back into memory. A re-run into the same folder updates that layer instead
  of adding a copy, and leaves it alone when nothing new was written.
* Settings persist between sessions (:mod:`.settings_store`); messages call the
  settings by the widget's field labels ("every (s)"), not by CLI flags.
* The source choice follows the viewer's layer list the way a magicgui layer
  annotation does (a ``choices`` callable, re-read on every layer-list event),
  but not through the annotation itself: napari's ``get_layers`` finds the
  viewer through the widget's Qt parents (an undocked widget, e.g. in a
  script, gets no layers), lists every ``Image`` layer (stills layers and
  review galleries have no video file to extract from) and cannot hold the
  "video file" / "folder of videos" choices of the same field.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)

from napari_video_extract._widgets._common import _path_value, _show_error
from napari_video_extract._widgets.extraction_jobs import (
    Progress,
    VideoDone,
    extraction_job,
    worded,
)
from napari_video_extract._widgets.settings_store import load_settings, save_settings
from napari_video_extract._widgets.stills_view import StillsNavigator, is_stills_layer
from napari_video_extract._widgets.worker import DockRun
from napari_video_extract.core.errors import InputError
from napari_video_extract.core.extract import (
    DEFAULT_NAME_TEMPLATE,
    HeadTail,
    Interval,
    collect_videos,
    output_folders,
    validate_template,
)
from napari_video_extract.core.formats import dialog_filter
from napari_video_extract.core.pick import DEFAULT_WINDOW, PICK_MODES, Pick

if TYPE_CHECKING:
    import napari

_FILE_SOURCE = "video file"
_FOLDER_SOURCE = "folder of videos"
#: Engine setting -> attribute of the widget whose label names it in messages.
_SETTING_FIELDS = {
    "every": "every",
    "start": "start_time",
    "end": "end_time",
    "head": "head",
    "tail": "tail",
    "quality": "quality",
    "name_template": "name_template",
    "pick": "pick",
    "window": "window",
}
#: Layer-list events that change the source choices (those napari itself sends
#: a docked magicgui widget's ``reset_choices``: the widget may also be undocked).
_LAYER_EVENTS = ("inserted", "removed", "reordered", "renamed")
#: Fields saved between sessions (the source only when it is not a layer).
_SAVED_FIELDS = (
    "source", "video_file", "video_folder", "recursive", "every", "start_time", "end_time",
    "head", "tail", "fmt", "quality", "out_dir", "name_template", "overwrite",
    "pick", "window", "skip_blank",
)  # fmt: skip


class _ExtractionWidget(Container):
    """Shared source, output and run/cancel controls of the extraction widgets."""

    _title = "extraction"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        # Scrollable: the dock fits a 1366x768 screen next to another dock.
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._totals: dict[int, tuple[int, int]] = {}
        self._n_videos = 0
        self.failures: list[str] = []

        self.source = ComboBox(label="source", choices=self._source_choices)
        self.video_file = FileEdit(label="video file", mode="r", filter=dialog_filter())
        self.video_folder = FileEdit(label="video folder", mode="d")
        self.recursive = CheckBox(text="include sub-folders", value=False)
        self.extend(self._sampling_widgets())
        self.fmt = ComboBox(label="format", choices=["jpg", "png", "webp"], value="jpg")
        self.quality = SpinBox(label="quality", min=1, max=100, value=95)
        self.out_dir = FileEdit(
            label="output folder",
            mode="d",
            tooltip="each video gets <output folder>/<video name>; "
            "empty: 'extracted_images' next to the video",
        )
        self.name_template = LineEdit(label="name template", value=DEFAULT_NAME_TEMPLATE)
        self.overwrite = CheckBox(
            text="overwrite (redo stills already in frames.csv)",
            value=False,
            tooltip="files not written by this tool are never overwritten",
        )
        self.pick = ComboBox(
            label="pick",
            choices=list(PICK_MODES),
            value="exact",
            tooltip="exact: the frame on screen at each instant; sharpest: the sharpest frame "
            "within +-window/2 of it",
        )
        self.window = FloatSpinBox(
            label="window (s)", value=DEFAULT_WINDOW, min=0.01, max=60.0, step=0.1
        )
        self.skip_blank = CheckBox(
            text="skip blank frames",
            value=False,
            tooltip="no still for a black, white or one-colour frame (recorded as skipped)",
        )
        self.run_button = PushButton(text="Extract")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(value="")
        self.insert(0, self.source)
        self.insert(1, self.video_file)
        self.insert(2, self.video_folder)
        self.insert(3, self.recursive)
        self.extend(
            [
                self.fmt,
                self.quality,
                self.out_dir,
                self.name_template,
                self.overwrite,
                self.pick,
                self.window,
                self.skip_blank,
                self.run_button,
                self.cancel_button,
                self.progress_bar,
                self.status,
            ]
        )
        self._restore_settings()
        self.source.changed.connect(self._on_source_changed)
        self.pick.changed.connect(self._on_pick_changed)
        self._on_pick_changed()
        self.run_button.clicked.connect(self.start)
        for event in _LAYER_EVENTS:
            getattr(viewer.layers.events, event).connect(self._refresh_sources)
        for name in _SAVED_FIELDS:
            if hasattr(self, name):
                getattr(self, name).changed.connect(self._save_settings)
        self._navigator = StillsNavigator(viewer)
        # The dock's own run: progress bar, Run/Cancel buttons, cancel on close.
        self.run = DockRun(
            self.root_native_widget,
            self.progress_bar,
            [self.run_button],
            self.cancel_button,
            on_close=self._release,
        )
        self.cancel_button.clicked.connect(self.cancel)  # after DockRun's: words the status
        self._on_source_changed()

    @property
    def native(self) -> Any:
        """The scroll area holding the widget (what a dock embeds).

        magicgui's ``native`` of a scrollable container is the inner
        widget, and napari docks ``native``: without this the dock would
        embed the widget without its scroll area and never scroll.
        """
        return self.root_native_widget

    # ---------------------------------------------------------------- settings

    @property
    def _settings_name(self) -> str:
        return self._title.replace(" ", "_")

    def _setting_names(self) -> dict[str, str]:
        """What this widget calls the engine's settings: its field labels."""
        return {
            setting: getattr(self, attr).label
            for setting, attr in _SETTING_FIELDS.items()
            if hasattr(self, attr)
        }

    def _save_settings(self, _value: Any = None) -> None:
        values: dict[str, Any] = {}
        for name in _SAVED_FIELDS:
            if not hasattr(self, name):
                continue
            value = getattr(self, name).value
            if name == "source" and not isinstance(value, str):
                continue  # a layer is not there next session
            values[name] = str(value) if isinstance(value, Path) else value
        save_settings(self._settings_name, values)

    def _restore_settings(self) -> None:
        for name, value in load_settings(self._settings_name).items():
            widget = getattr(self, name, None) if name in _SAVED_FIELDS else None
            if widget is None:
                continue
            with contextlib.suppress(ValueError, TypeError):  # stale or foreign value: default
                if name == "source" and value not in (_FILE_SOURCE, _FOLDER_SOURCE):
                    continue
                widget.value = value

    # ----------------------------------------------------------------- sources

    def _sampling_widgets(self) -> list:
        raise NotImplementedError

    def _spec(self) -> Interval | HeadTail:
        raise NotImplementedError

    def _source_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        layers = [
            (f"layer: {layer.name}", layer)
            for layer in self._viewer.layers
            if isinstance(layer.metadata, dict) and layer.metadata.get("path")
        ]
        return [*layers, (_FILE_SOURCE, _FILE_SOURCE), (_FOLDER_SOURCE, _FOLDER_SOURCE)]

    def _refresh_sources(self, _event: Any = None) -> None:
        with contextlib.suppress(RuntimeError):  # widget already deleted
            self.source.reset_choices()
            self._on_source_changed()

    def _on_pick_changed(self, _value: Any = None) -> None:
        self.window.visible = self.pick.value == "sharpest"

    def _on_source_changed(self, _value: Any = None) -> None:
        value = self.source.value
        self.video_file.visible = value == _FILE_SOURCE
        self.video_folder.visible = value == _FOLDER_SOURCE
        self.recursive.visible = value == _FOLDER_SOURCE

    def _videos(self) -> tuple[list[Path], list[Path]]:
        """Videos to process and skipped non-video files; raises on bad input."""
        value = self.source.value
        if value == _FILE_SOURCE:
            path = _path_value(self.video_file)
            if path is None:
                raise ValueError("choose a video file")
            inputs = [path]
        elif value == _FOLDER_SOURCE:
            path = _path_value(self.video_folder)
            if path is None or not path.is_dir():
                raise ValueError(f"choose a folder of videos (got {path or 'nothing'})")
            inputs = [path]
        elif value is not None:
            inputs = [Path(value.metadata["path"])]
        else:
            raise ValueError("choose a source")
        videos, skipped, errors = collect_videos(inputs, recursive=self.recursive.value)
        if errors:
            raise errors[0]
        if not videos:
            raise ValueError(f"no video files in {inputs[0]}")
        return videos, skipped

    # ---------------------------------------------------------------------- run

    @property
    def running(self) -> bool:
        """Whether an extraction is in progress."""
        return self.run.running

    def _release(self) -> None:
        """The dock closed (its run is cancelled): stop following the viewer."""
        self._navigator.close()
        for event in _LAYER_EVENTS:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                getattr(self._viewer.layers.events, event).disconnect(self._refresh_sources)

    def _refuse(self, message: str) -> None:
        self.status.value = f"error: {message}"
        _show_error(message)

    def start(self) -> None:
        """Validate the settings and start extracting in a worker thread."""
        if self.running:
            return
        names = self._setting_names()
        try:
            spec = self._spec()
            template = self.name_template.value.strip() or DEFAULT_NAME_TEMPLATE
            validate_template(template)
            pick = Pick(
                self.pick.value,
                window=float(self.window.value),
                skip_blank=bool(self.skip_blank.value),
            )
            videos, skipped = self._videos()
        except (ValueError, InputError) as exc:
            self._refuse(worded(exc, names))
            return
        out_root = _path_value(self.out_dir) or videos[0].parent / "extracted_images"
        jobs = list(output_folders(videos, out_root).items())
        options = {
            "fmt": self.fmt.value,
            "quality": int(self.quality.value),
            "name_template": template,
            "overwrite": bool(self.overwrite.value),
        }
        if not pick.plain:
            options["pick"] = pick
        self._totals = {}
        self._n_videos = len(jobs)
        self.failures = []
        self._n_written = self._n_resumed = 0
        self._crashed: str | None = None
        skipped_note = f" ({len(skipped)} non-video file(s) skipped)" if skipped else ""
        self.status.value = f"extracting {len(videos)} video(s){skipped_note}..."
        self.run.start(
            extraction_job,
            jobs,
            spec,
            options,
            names,
            on_yield=self._on_yielded,
            on_error=self._on_error,
            on_finish=self._on_finished,
        )

    def cancel(self) -> None:
        """Ask the running extraction to stop; finished images stay complete."""
        if self.running:
            self.run.cancel()
            self.status.value = "cancelling..."

    def _on_error(self, exc: Exception) -> None:
        self._crashed = f"{self._title} failed: {exc}"
        _show_error(self._crashed)

    def _on_yielded(self, message: Progress | VideoDone) -> None:
        if isinstance(message, Progress):
            if self.run.cancel_event.is_set():
                return  # keep "cancelling..." on screen
            if message.total:
                self._totals[message.number] = (message.done, message.total)
                total_all = sum(t for _, t in self._totals.values())
                done_all = sum(d for d, _ in self._totals.values())
                self.run.show_progress(done_all, total_all)
            counts = f" {message.done}/{message.total} stills" if message.total else "..."
            self.status.value = (
                f"video {message.number + 1}/{self._n_videos}: {message.phase}{counts}"
            )
            return
        outcome = message
        self._n_written += outcome.written
        self._n_resumed += outcome.resumed
        if outcome.error:
            self.failures.append(outcome.error)
            _show_error(outcome.error)
        if outcome.layer is not None:
            self._show_stills(outcome)

    def _show_stills(self, outcome: VideoDone) -> None:
        """Add the video's stills layer, or update the one already showing that folder."""
        stack, kwargs, _ = outcome.layer
        folder = kwargs["metadata"]["folder"]
        layer = next(
            (
                lyr
                for lyr in self._viewer.layers
                if is_stills_layer(lyr) and lyr.metadata.get("folder") == folder
            ),
            None,
        )
        if layer is None:
            self._viewer.add_image(stack, **kwargs)
            return
        if outcome.written == 0 and layer.data.files == stack.files:
            return  # nothing new: the layer already shows these stills
        layer.data = stack
        layer.translate = kwargs["translate"]
        layer.scale = kwargs["scale"]
        layer.metadata = kwargs["metadata"]
        layer.refresh()

    def _on_finished(self) -> None:
        if self._crashed:
            self.status.value = f"error: {self._crashed}"
            return
        word = "cancelled" if self.run.cancel_event.is_set() else "done"
        failed = f", {len(self.failures)} failed" if self.failures else ""
        self.status.value = (
            f"{word}: {self._n_written} written, {self._n_resumed} already there{failed}"
        )
        if self.failures:
            self.status.value += f" (last: {self.failures[-1]})"

"""The shared base of the extraction widgets: source, output, run/cancel, stills layers."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)

from napari_video_extract._widgets._common import _path_value, _read_rgb, _show_error
from napari_video_extract.core.errors import InputError
from napari_video_extract.core.extract import (
    DEFAULT_NAME_TEMPLATE,
    HeadTail,
    Interval,
    collect_videos,
    extract_video,
    output_folders,
    validate_template,
)
from napari_video_extract.core.manifest import MANIFEST_NAME, FrameRecord

if TYPE_CHECKING:
    import pandas as pd

    import napari

_FILE_SOURCE = "video file"
_FOLDER_SOURCE = "folder of videos"
_VIDEO_FILTER = (
    "Videos (*.mp4 *.mov *.m4v *.avi *.mkv *.webm *.mpg *.mpeg *.wmv *.flv *.ts "
    "*.MP4 *.MOV *.M4V *.AVI *.MKV *.WEBM *.MPG *.MPEG *.WMV *.FLV *.TS);;All files (*)"
)


@dataclass
class _VideoDone:
    """One video's outcome, sent from the worker to the main thread."""

    video: Path
    out_dir: Path
    records: list[FrameRecord] = field(default_factory=list)
    stack: np.ndarray | None = None
    written: int = 0
    resumed: int = 0
    error: str | None = None
    unreadable: list[str] = field(default_factory=list)


def _load_stills(
    out_dir: Path, records: Sequence[FrameRecord]
) -> tuple[list, np.ndarray | None, list]:
    """Read the images listed in a manifest; skip missing or undecodable ones."""
    kept, images, bad = [], [], []
    for rec in records:
        try:
            image = _read_rgb(out_dir / rec.file)
        except OSError:
            bad.append(rec.file)
            continue
        if images and image.shape != images[0].shape:
            bad.append(rec.file)
            continue
        kept.append(rec)
        images.append(image)
    return kept, (np.stack(images) if images else None), bad


def _extraction_job(
    jobs: Sequence[tuple[Path, Path]],
    spec: Interval | HeadTail,
    options: dict[str, Any],
    cancel: threading.Event,
) -> Iterator[tuple]:
    """Worker body: extract each video, yielding progress and per-video results.

    Yields ``("progress", video_number, done, total)`` and
    ``("video", _VideoDone)``; returns nothing.
    """
    messages: queue.SimpleQueue = queue.SimpleQueue()
    with ThreadPoolExecutor(max_workers=1) as pool:
        for number, (video, out_dir) in enumerate(jobs):
            if cancel.is_set():
                break
            outcome = _VideoDone(video=video, out_dir=out_dir)

            def run(outcome: _VideoDone = outcome, number: int = number) -> None:
                try:
                    res = extract_video(
                        outcome.video,
                        outcome.out_dir,
                        spec,
                        cancel=cancel,
                        progress=lambda d, t: messages.put(("progress", number, d, t)),
                        **options,
                    )
                except (InputError, ValueError) as exc:
                    outcome.error = str(exc)
                    return
                outcome.written, outcome.resumed = res.written, res.resumed
                outcome.records = list(res.records)
                if res.error:
                    outcome.error = f"{outcome.video}: {res.error}"

            future = pool.submit(run)
            while True:
                try:
                    yield messages.get(timeout=0.05)
                except queue.Empty:
                    if future.done():
                        break
            with contextlib.suppress(queue.Empty):
                while True:
                    yield messages.get_nowait()
            future.result()
            if outcome.records:
                outcome.records, outcome.stack, outcome.unreadable = _load_stills(
                    out_dir, outcome.records
                )
            yield ("video", outcome)


def _features_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=["time", "frame", "file", "video"])


class _ExtractionWidget(Container):
    """Shared source, output and run/cancel controls of the extraction widgets."""

    _title = "extraction"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._cancel_event = threading.Event()
        self._worker: Any = None
        self._progress: Any = None
        self._totals: dict[int, tuple[int, int]] = {}

        self.source = ComboBox(label="source", choices=self._source_choices)
        self.video_file = FileEdit(label="video file", mode="r", filter=_VIDEO_FILTER)
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
        self.run_button = PushButton(text="Extract")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
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
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )
        self.source.changed.connect(self._on_source_changed)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        viewer.layers.events.inserted.connect(self._refresh_sources)
        viewer.layers.events.removed.connect(self._refresh_sources)
        self._on_source_changed()

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
        return self._worker is not None

    def start(self) -> None:
        """Validate the settings and start extracting in a worker thread."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.running:
            return
        try:
            spec = self._spec()
            template = self.name_template.value.strip() or DEFAULT_NAME_TEMPLATE
            validate_template(template)
            videos, skipped = self._videos()
        except (ValueError, InputError) as exc:
            _show_error(str(exc))
            return
        out_root = _path_value(self.out_dir) or videos[0].parent / "extracted_images"
        jobs = list(output_folders(videos, out_root).items())
        options = {
            "fmt": self.fmt.value,
            "quality": int(self.quality.value),
            "name_template": template,
            "overwrite": bool(self.overwrite.value),
        }
        self._cancel_event = threading.Event()
        self._totals = {}
        self._progress = progress(total=0, desc=self._title)
        worker = create_worker(
            _extraction_job,
            jobs,
            spec,
            options,
            self._cancel_event,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(lambda exc: _show_error(f"{self._title} failed: {exc}"))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._n_written = self._n_resumed = self._n_failed = 0
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        skipped_note = f" ({len(skipped)} non-video file(s) skipped)" if skipped else ""
        self.status.value = f"extracting {len(videos)} video(s){skipped_note}..."
        worker.start()

    def cancel(self) -> None:
        """Ask the running extraction to stop; finished images stay complete."""
        if self.running:
            self._cancel_event.set()
            self.status.value = "cancelling..."

    def _on_yielded(self, message: tuple) -> None:
        if message[0] == "progress":
            _, number, done, total = message
            self._totals[number] = (done, total)
            total_all = sum(t for _, t in self._totals.values())
            done_all = sum(d for d, _ in self._totals.values())
            if self._progress is not None:
                if self._progress.total != total_all:
                    self._progress.total = total_all
                self._progress.update(done_all - self._progress.n)
            return
        outcome: _VideoDone = message[1]
        self._n_written += outcome.written
        self._n_resumed += outcome.resumed
        if outcome.error:
            self._n_failed += 1
            _show_error(outcome.error)
        if outcome.unreadable:
            _show_error(
                f"{outcome.out_dir}: {len(outcome.unreadable)} image(s) listed in "
                f"{MANIFEST_NAME} are missing or unreadable (e.g. {outcome.unreadable[0]})"
            )
        if outcome.stack is not None:
            self._add_stills_layer(outcome)

    def _add_stills_layer(self, outcome: _VideoDone) -> None:
        rows = [
            {
                "time": rec.time,
                "frame": rec.frame,
                "file": str(outcome.out_dir / rec.file),
                "video": rec.video,
            }
            for rec in outcome.records
        ]
        self._viewer.add_image(
            outcome.stack,
            name=f"{outcome.video.stem} stills",
            rgb=True,
            axis_labels=("still", "y", "x"),
            metadata={
                "features": _features_frame(rows),
                "folder": str(outcome.out_dir),
                "video": str(outcome.video),
            },
        )

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        word = "cancelled" if self._cancel_event.is_set() else "done"
        failed = f", {self._n_failed} failed" if self._n_failed else ""
        self.status.value = (
            f"{word}: {self._n_written} written, {self._n_resumed} already there{failed}"
        )

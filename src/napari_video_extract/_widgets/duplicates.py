"""Duplicate finder dock widget: hash, cluster, highlight, review, write."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    PushButton,
    SpinBox,
)

from napari_video_extract._widgets._common import (
    _path_value,
    _read_rgb,
    _rgb01,
    _show_error,
    _show_info,
)
from napari_video_extract.core.dedup import KEEP_POLICIES, MODES, cluster_hashes, ordered_images
from napari_video_extract.core.errors import InputError, OutputError
from napari_video_extract.core.extract import encode_image
from napari_video_extract.core.hashing import (
    METHODS,
    default_threshold,
    hash_bits,
    hash_frames,
    sharpness,
)
from napari_video_extract.core.manifest import MANIFEST_NAME, write_atomic

if TYPE_CHECKING:
    import napari

__all__ = ["CLUSTER_PALETTE", "DUPLICATE_RGB", "KEPT_RGB", "DuplicateFinderWidget", "to_uint8"]

#: Border colour of a frame kept by the duplicate finder (RGB, 0-255).
KEPT_RGB = (26, 217, 51)
#: Border colour of a frame marked as a duplicate (RGB, 0-255).
DUPLICATE_RGB = (255, 89, 0)
#: Inner border colours, one per cluster (cycled); no greens or oranges so they
#: never read as a KEPT/DUPLICATE border.
CLUSTER_PALETTE = (
    (31, 119, 180),
    (148, 103, 189),
    (23, 190, 207),
    (227, 119, 194),
    (188, 189, 34),
    (127, 127, 127),
    (90, 60, 220),
    (0, 160, 160),
)
_IMAGE_FOLDER_SOURCE = "folder of images"
_HASH_CHUNK = 16  # frames read and hashed between progress/cancel checks


def to_uint8(frames: np.ndarray, contrast_limits: Sequence[float] | None = None) -> np.ndarray:
    """Convert any image stack to uint8 the way napari shows it.

    Parameters
    ----------
    frames : ndarray
        Any dtype. ``uint8`` is returned unchanged, ``bool`` becomes 0/255.
    contrast_limits : (float, float), optional
        The display range mapped to 0-255 (a layer's ``contrast_limits``);
        default: the data's own range (``[0, 1]`` for floats within it).

    Returns
    -------
    ndarray of uint8
    """
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype == bool:
        return frames.astype(np.uint8) * 255
    if contrast_limits is None:
        lo, hi = float(np.nanmin(frames)), float(np.nanmax(frames))
        if np.issubdtype(frames.dtype, np.floating) and lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
    else:
        lo, hi = (float(v) for v in contrast_limits)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = (frames.astype(np.float64) - lo) * scale
    return np.clip(np.nan_to_num(np.rint(out)), 0, 255).astype(np.uint8)


@dataclass
class _DedupSettings:
    method: str
    hash_size: int
    threshold: int
    mode: str
    keep: str


@dataclass
class _Review:
    """The result of one duplicate search, with the user's overrides.

    ``kept`` starts as the engine's decision; the user can flip any entry.
    """

    name: str
    frames: np.ndarray  # (N, H, W) or (N, H, W, C) uint8, as shown
    cluster: np.ndarray
    auto_kept: np.ndarray
    kept: np.ndarray
    distance: np.ndarray
    time: np.ndarray  # float, NaN when unknown
    frame: np.ndarray  # video frame number when known, else the stack index
    files: list[str | None]
    video: list[str]
    settings: _DedupSettings
    from_folder: Path | None = None

    @property
    def n(self) -> int:
        return len(self.cluster)

    def tag(self, i: int) -> str:
        c = int(self.cluster[i])
        if self.kept[i]:
            return f"KEPT c{c}"
        return f"DUPLICATE c{c} (d={int(self.distance[i])})"


def _pad_to(images: list[np.ndarray]) -> np.ndarray:
    """Stack RGB images of different sizes, padding at the bottom/right with black."""
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    out = np.zeros((len(images), h, w, 3), dtype=np.uint8)
    for k, im in enumerate(images):
        out[k, : im.shape[0], : im.shape[1]] = im
    return out


def _dedup_job(
    source: dict[str, Any], settings: _DedupSettings, cancel: threading.Event
) -> Iterator[tuple]:
    """Worker body: read and hash frames in chunks, then cluster.

    Yields ``("progress", done, total)``; returns a :class:`_Review` or None
    when cancelled.
    """
    quality_rows: list[Any] = []
    hashes: list[np.ndarray] = []
    if source["kind"] == "folder":
        folder: Path = source["folder"]
        try:
            paths, times = ordered_images(folder)
        except OSError as exc:
            raise InputError(folder, f"cannot list folder: {exc.strerror or exc}") from None
        if not paths:
            raise InputError(folder, "no images in this folder")
        images, good, good_times = [], [], []
        for k, path in enumerate(paths):
            if cancel.is_set():
                return None
            try:
                image = _read_rgb(path)
            except OSError:
                continue  # reported by the caller as unreadable
            images.append(image)
            good.append(path)
            good_times.append(times[k])
            hashes.append(
                hash_frames(image[None], method=settings.method, hash_size=settings.hash_size)
            )
            if settings.keep == "sharpest":
                quality_rows.append(sharpness(image))
            elif settings.keep == "largest":
                quality_rows.append((image.shape[0] * image.shape[1], path.stat().st_size))
            yield ("progress", k + 1, len(paths))
        if not images:
            raise InputError(folder, "no readable images in this folder")
        frames = _pad_to(images)
        files: list[str | None] = [str(p) for p in good]
        time_values = np.array([np.nan if t is None else t for t in good_times], dtype=float)
        frame_numbers = np.arange(len(images))
        videos = [""] * len(images)
        unreadable = len(paths) - len(images)
    else:
        data = source["data"]
        n = int(data.shape[0])
        chunks = []
        for lo in range(0, n, _HASH_CHUNK):
            if cancel.is_set():
                return None
            chunk = to_uint8(np.asarray(data[lo : lo + _HASH_CHUNK]), source["contrast_limits"])
            if chunk.ndim == 4 and chunk.shape[-1] == 1:
                chunk = chunk[..., 0]
            chunks.append(chunk)
            hashes.append(hash_frames(chunk, method=settings.method, hash_size=settings.hash_size))
            if settings.keep == "sharpest":
                quality_rows.extend(sharpness(f) for f in chunk)
            elif settings.keep == "largest":
                quality_rows.extend([chunk.shape[1] * chunk.shape[2]] * len(chunk))
            yield ("progress", min(n, lo + _HASH_CHUNK), n)
        frames = np.concatenate(chunks)
        features = source.get("features")
        files = [None] * n
        time_values = np.full(n, np.nan)
        frame_numbers = np.arange(n)
        videos = [source["name"]] * n
        if features is not None and len(features) == n:
            if "file" in features:
                files = [str(f) if isinstance(f, str) and f else None for f in features["file"]]
            if "time" in features:
                time_values = np.asarray(features["time"], dtype=float)
            if "frame" in features:
                frame_numbers = np.asarray(features["frame"], dtype=np.int64)
            if "video" in features:
                videos = [str(v) for v in features["video"]]
        unreadable = 0
    quality = np.asarray(quality_rows, dtype=float) if quality_rows else None
    result = cluster_hashes(
        np.concatenate(hashes),
        threshold=settings.threshold,
        mode=settings.mode,
        keep=settings.keep,
        quality=quality,
        n_bits=hash_bits(settings.method, settings.hash_size),
    )
    review = _Review(
        name=source["name"],
        frames=frames,
        cluster=result.cluster,
        auto_kept=result.kept.copy(),
        kept=result.kept.copy(),
        distance=result.distance,
        time=time_values,
        frame=frame_numbers,
        files=files,
        video=videos,
        settings=settings,
        from_folder=source.get("folder"),
    )
    return review, unreadable


def _new_file(folder: Path, name: str, data: bytes) -> str:
    """Write ``data`` as a new file in ``folder``; never overwrite.

    A taken name gets ``-1``, ``-2``... before the extension (as the dedup CLI
    does). The file appears complete or not at all (temporary file + hard link).

    Returns
    -------
    str
        The name written.
    """
    stem, suffix = os.path.splitext(name)
    tmp = folder / f".{name}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        k = 0
        while True:
            candidate = name if k == 0 else f"{stem}-{k}{suffix}"
            try:
                os.link(tmp, folder / candidate)
                return candidate
            except FileExistsError:
                k += 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


#: Columns of the manifest the duplicate finder writes in each output folder.
REVIEW_COLUMNS = (
    "file", "video", "time", "frame", "width", "height",
    "cluster", "kept", "distance", "decision", "source",
)  # fmt: skip


def _merge_manifest(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Add ``rows`` to ``folder/frames.csv`` (kept rows first), atomically."""
    path = folder / MANIFEST_NAME
    old_rows: list[dict[str, str]] = []
    columns = list(REVIEW_COLUMNS)
    if path.exists():
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            old_rows = list(reader)
            for col in reader.fieldnames or []:
                if col not in columns:
                    columns.append(col)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(old_rows)
    writer.writerows(rows)
    write_atomic(path, buf.getvalue().encode("utf-8"))


def _write_job(
    review: _Review,
    kept: np.ndarray,
    kept_dir: Path,
    dup_dir: Path,
    fmt: str,
    quality: int,
    cancel: threading.Event,
) -> Iterator[tuple]:
    """Worker body of "Write": kept frames to one folder, duplicates to another.

    Frames that come from an image file are copied byte for byte; others are
    encoded in ``fmt``. Returns ``(n_kept, n_duplicates, cancelled)``.
    """
    for folder in (kept_dir, dup_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(folder, f"cannot create folder ({exc.strerror or exc})") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(folder, "folder is not writable")
    ext = "jpg" if fmt == "jpeg" else fmt
    rows: dict[Path, list[dict[str, Any]]] = {kept_dir: [], dup_dir: []}
    digits = max(6, len(str(review.n)))
    try:
        for i in range(review.n):
            if cancel.is_set():
                break
            target = kept_dir if kept[i] else dup_dir
            src = review.files[i]
            frame = review.frames[i]
            if src and Path(src).is_file():
                name, data = Path(src).name, Path(src).read_bytes()
            else:
                name = f"{review.name}_{i:0{digits}d}.{ext}"
                data = encode_image(frame, fmt, quality)
            try:
                written = _new_file(target, name, data)
            except OSError as exc:
                raise OutputError(target / name, f"cannot write ({exc.strerror or exc})") from None
            t = review.time[i]
            rows[target].append(
                {
                    "file": written,
                    "video": review.video[i],
                    "time": "" if math.isnan(t) else f"{t:.6f}",
                    "frame": int(review.frame[i]),
                    "width": frame.shape[1],
                    "height": frame.shape[0],
                    "cluster": int(review.cluster[i]),
                    "kept": int(bool(kept[i])),
                    "distance": int(review.distance[i]),
                    "decision": "auto" if kept[i] == review.auto_kept[i] else "user",
                    "source": src or f"{review.name}[{i}]",
                }
            )
            yield ("progress", i + 1, review.n)
    finally:
        # Record whatever was written, even when cancelled or failing half-way.
        for folder, folder_rows in rows.items():
            if folder_rows:
                _merge_manifest(folder, folder_rows)
    return len(rows[kept_dir]), len(rows[dup_dir]), cancel.is_set()


class DuplicateFinderWidget(Container):
    """Find near-duplicate frames, show the clusters, review, then write.

    The source is any image stack layer ((N, H, W) or (N, H, W, 3|4), any
    dtype, converted to uint8 through its contrast limits) or a folder of
    images (added as a layer; images of different sizes are padded). After
    the search, each frame gets a thick border -- green when KEPT, orange when
    DUPLICATE -- an inner border in its cluster's colour and a tag such as
    ``KEPT c3`` or ``DUPLICATE c3 (d=5)`` (a Shapes layer), and the table lists
    every frame by cluster: clicking a row shows that frame, ticking "kept"
    overrides the decision. "Write" puts kept frames in one folder and
    duplicates in another, never overwriting a file, with a ``frames.csv``
    (``file, video, time, frame, width, height, cluster, kept, distance,
    decision, source``) in each.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (injected by napari).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from qtpy.QtWidgets import QAbstractItemView, QTableWidget

        super().__init__(labels=True)
        self._viewer = viewer
        self._worker: Any = None
        self._progress: Any = None
        self._cancel_event = threading.Event()
        self.review: _Review | None = None
        self.review_layer: Any = None
        self.overlay_layer: Any = None
        self.kept_layer: Any = None
        self._filling_table = False

        self.source = ComboBox(label="source", choices=self._source_choices)
        self.image_folder = FileEdit(label="image folder", mode="d")
        self.method = ComboBox(label="hash", choices=list(METHODS), value="phash")
        self.hash_size = SpinBox(label="hash size", min=2, max=64, value=8)
        self.threshold = SpinBox(
            label="threshold (bits)", min=0, max=4096, value=default_threshold("phash", 8)
        )
        self.mode = ComboBox(label="mode", choices=list(MODES), value="global")
        self.keep = ComboBox(label="keep", choices=list(KEEP_POLICIES), value="first")
        self.find_button = PushButton(text="Find duplicates")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.only_kept = CheckBox(text="show only kept frames", value=False, enabled=False)
        self.kept_dir = FileEdit(label="kept frames to", mode="d")
        self.dup_dir = FileEdit(label="duplicates to", mode="d")
        self.fmt = ComboBox(
            label="format",
            choices=["png", "jpg", "webp"],
            value="png",
            tooltip="for frames that are not already image files (those are copied as is)",
        )
        self.quality = SpinBox(label="quality", min=1, max=100, value=95)
        self.write_button = PushButton(text="Write", enabled=False)
        self.status = Label(value="")
        self.extend(
            [
                self.source,
                self.image_folder,
                self.method,
                self.hash_size,
                self.threshold,
                self.mode,
                self.keep,
                self.find_button,
                self.cancel_button,
                self.only_kept,
            ]
        )
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["cluster", "frame", "time (s)", "d (bits)", "kept"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(180)
        self.native.layout().addWidget(self.table)
        tail = Container(
            widgets=[
                self.kept_dir,
                self.dup_dir,
                self.fmt,
                self.quality,
                self.write_button,
                self.status,
            ],
            labels=True,
        )
        self.native.layout().addWidget(tail.native)
        self._tail = tail  # keep the Python wrapper alive

        self.source.changed.connect(self._on_source_changed)
        self.method.changed.connect(self._on_hash_changed)
        self.hash_size.changed.connect(self._on_hash_changed)
        self.find_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.only_kept.changed.connect(self._update_kept_layer)
        self.write_button.clicked.connect(self.write)
        self.table.cellClicked.connect(self._on_cell_clicked)
        self.table.itemChanged.connect(self._on_item_changed)
        viewer.layers.events.inserted.connect(self._refresh_sources)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._on_source_changed()

    # ----------------------------------------------------------------- settings

    def _source_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        ours = {id(x) for x in (self.kept_layer,) if x is not None}
        layers = [
            (f"layer: {layer.name}", layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image)
            and id(layer) not in ours
            and (layer.data.ndim == 3 if not layer.rgb else layer.data.ndim == 4)
        ]
        return [*layers, (_IMAGE_FOLDER_SOURCE, _IMAGE_FOLDER_SOURCE)]

    def _refresh_sources(self, _event: Any = None) -> None:
        with contextlib.suppress(RuntimeError):
            self.source.reset_choices()
            self._on_source_changed()

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        if layer is self.overlay_layer:
            self.overlay_layer = None
        if layer is self.kept_layer:
            self.kept_layer = None
        if layer is self.review_layer:
            self.review_layer = None
        self._refresh_sources()

    def _on_source_changed(self, _value: Any = None) -> None:
        self.image_folder.visible = self.source.value == _IMAGE_FOLDER_SOURCE

    def _on_hash_changed(self, _value: Any = None) -> None:
        # A bad combination (whash with a size that is not a power of two) is
        # reported when the search starts.
        with contextlib.suppress(ValueError):
            self.threshold.value = default_threshold(self.method.value, int(self.hash_size.value))

    def _settings(self) -> _DedupSettings:
        method, size = self.method.value, int(self.hash_size.value)
        n_bits = hash_bits(method, size)  # raises ValueError for bad combinations
        threshold = int(self.threshold.value)
        if threshold > n_bits:
            raise ValueError(f"threshold must be 0 to {n_bits} bits for this hash")
        return _DedupSettings(method, size, threshold, self.mode.value, self.keep.value)

    # ---------------------------------------------------------------------- run

    @property
    def running(self) -> bool:
        """Whether a search or a write is in progress."""
        return self._worker is not None

    def _launch(self, func: Callable, *args: Any, desc: str, on_return: Callable) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._cancel_event = threading.Event()
        self._progress = progress(total=0, desc=desc)
        worker = create_worker(
            func, *args, self._cancel_event, _start_thread=False, _ignore_errors=True
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_return)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.find_button.enabled = False
        self.write_button.enabled = False
        self.cancel_button.enabled = True
        worker.start()

    def start(self) -> None:
        """Hash and cluster the chosen source in a worker thread."""
        if self.running:
            return
        try:
            settings = self._settings()
            value = self.source.value
            if value == _IMAGE_FOLDER_SOURCE:
                folder = _path_value(self.image_folder)
                if folder is None or not folder.is_dir():
                    raise InputError(folder or Path("."), "choose a folder of images")
                source: dict[str, Any] = {"kind": "folder", "folder": folder, "name": folder.name}
            elif value is None:
                raise ValueError("choose a source layer or a folder of images")
            else:
                features = (
                    value.metadata.get("features") if isinstance(value.metadata, dict) else None
                )
                source = {
                    "kind": "layer",
                    "layer": value,
                    "data": value.data,
                    "contrast_limits": None
                    if value.data.dtype == np.uint8
                    else value.contrast_limits,
                    "features": features,
                    "name": value.name,
                }
        except (ValueError, InputError) as exc:
            _show_error(str(exc))
            return
        self._pending_source = source
        self.status.value = "hashing..."
        self._launch(
            _dedup_job, source, settings, desc="finding duplicates", on_return=self._on_found
        )

    def cancel(self) -> None:
        """Stop the running search or write."""
        if self.running:
            self._cancel_event.set()
            self.status.value = "cancelling..."

    def _on_progress(self, message: tuple) -> None:
        _, done, total = message
        if self._progress is not None:
            if self._progress.total != total:
                self._progress.total = total
            self._progress.update(done - self._progress.n)

    def _on_error(self, exc: Exception) -> None:
        _show_error(
            str(exc)
            if isinstance(exc, InputError | ValueError)
            else f"{type(exc).__name__}: {exc}"
        )

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._worker = None
        self.find_button.enabled = True
        self.cancel_button.enabled = False
        self.write_button.enabled = self.review is not None

    def _on_found(self, outcome: tuple[_Review, int] | None) -> None:
        if outcome is None:
            self.status.value = "cancelled"
            return
        review, unreadable = outcome
        source = self._pending_source
        self._clear_review_layers()
        if source["kind"] == "folder":
            import pandas as pd

            features = pd.DataFrame(
                {
                    "time": review.time,
                    "frame": review.frame,
                    "file": review.files,
                    "video": review.video,
                }
            )
            self.review_layer = self._viewer.add_image(
                review.frames,
                name=f"{review.name} images",
                rgb=True,
                axis_labels=("image", "y", "x"),
                metadata={"features": features, "folder": str(source["folder"])},
            )
        else:
            self.review_layer = source["layer"]
        self.review = review
        self.only_kept.enabled = True
        self._draw_overlay()
        # Keep the reviewed stack selected (its controls, not the overlay's).
        self._viewer.layers.selection.active = self.review_layer
        self._fill_table()
        self._update_kept_layer()
        n_dup = int((~review.kept).sum())
        self.status.value = (
            f"{review.n} frames, {int(review.cluster.max()) + 1 if review.n else 0} clusters, "
            f"{n_dup} duplicates (threshold {review.settings.threshold} bits)"
        )
        if unreadable:
            _show_error(f"{source['folder']}: {unreadable} unreadable image(s) skipped")

    # ------------------------------------------------------------------ display

    def _clear_review_layers(self) -> None:
        for layer in (self.overlay_layer, self.kept_layer):
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        self.overlay_layer = self.kept_layer = None
        self.only_kept.value = False

    def _overlay_style(self) -> tuple[list[str], np.ndarray, Any]:
        import pandas as pd

        review = self.review
        n = review.n
        status = np.where(review.kept, "KEPT", "DUPLICATE")
        status_colors = np.array([_rgb01(KEPT_RGB if k else DUPLICATE_RGB) for k in review.kept])
        cluster_colors = np.array(
            [_rgb01(CLUSTER_PALETTE[int(c) % len(CLUSTER_PALETTE)]) for c in review.cluster]
        )
        tags = [review.tag(i) for i in range(n)] + [""] * n
        edge = np.concatenate([status_colors, cluster_colors])
        features = pd.DataFrame(
            {
                "index": np.concatenate([np.arange(n)] * 2),
                "cluster": np.concatenate([review.cluster] * 2),
                "status": np.concatenate([status, status]),
                "tag": tags,
                "tag_color": [tuple(c) for c in np.concatenate([status_colors, status_colors])],
            }
        )
        return tags, edge, features

    def _draw_overlay(self) -> None:
        review, layer = self.review, self.review_layer
        h, w = review.frames.shape[1:3]
        width = max(2.0, round(0.025 * min(h, w)))
        inner = width * 1.5
        shapes = []
        for inset in (width / 2, inner + width / 4):
            for i in range(review.n):
                y0, x0, y1, x1 = inset - 0.5, inset - 0.5, h - inset - 0.5, w - inset - 0.5
                shapes.append(np.array([[i, y0, x0], [i, y0, x1], [i, y1, x1], [i, y1, x0]]))
        _, edge, features = self._overlay_style()
        widths = [width] * review.n + [width / 2] * review.n
        self.overlay_layer = self._viewer.add_shapes(
            shapes,
            shape_type="rectangle",
            name=f"{review.name} clusters",
            edge_width=widths,
            edge_color=edge,
            face_color="transparent",
            features=features,
            text={
                "string": "{tag}",
                # Top centre, inside the frame: napari centres text on its anchor.
                "anchor": "center",
                "translation": [0, -h / 2 + 4 * width, 0],
                "size": 14,
                "color": {"feature": "tag_color", "encoding_type": "DirectColorEncoding"},
            },
            opacity=1.0,  # exact colours: the border must read as KEPT/DUPLICATE
            scale=layer.scale[:3],
            translate=layer.translate[:3],
        )
        self.overlay_layer.editable = False

    def _refresh_overlay(self) -> None:
        if self.overlay_layer is None:
            return
        _, edge, features = self._overlay_style()
        self.overlay_layer.features = features
        self.overlay_layer.edge_color = edge
        self.overlay_layer.refresh_text()
        self.overlay_layer.refresh()

    def _fill_table(self) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QTableWidgetItem

        review = self.review
        order = np.lexsort((np.arange(review.n), review.cluster))
        self._filling_table = True
        try:
            self.table.setRowCount(review.n)
            for row, i in enumerate(order):
                i = int(i)
                c = int(review.cluster[i])
                t = review.time[i]
                cells = [
                    f"c{c}",
                    str(int(review.frame[i])),
                    "" if math.isnan(t) else f"{t:.3f}",
                    str(int(review.distance[i])),
                ]
                for col, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, i)
                    if col == 0:
                        item.setBackground(QColor(*CLUSTER_PALETTE[c % len(CLUSTER_PALETTE)]))
                    self.table.setItem(row, col, item)
                check = QTableWidgetItem("KEPT" if review.kept[i] else "DUPLICATE")
                check.setData(Qt.ItemDataRole.UserRole, i)
                check.setFlags(
                    Qt.ItemFlag.ItemIsUserCheckable
                    | Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsSelectable
                )
                check.setCheckState(
                    Qt.CheckState.Checked if review.kept[i] else Qt.CheckState.Unchecked
                )
                self.table.setItem(row, 4, check)
        finally:
            self._filling_table = False
        self.table.resizeColumnsToContents()

    def row_of(self, index: int) -> int:
        """Table row of frame ``index`` of the reviewed stack."""
        from qtpy.QtCore import Qt

        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == index:
                return row
        raise KeyError(index)

    def _on_cell_clicked(self, row: int, _column: int) -> None:
        from qtpy.QtCore import Qt

        index = int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))
        self.go_to(index)

    def go_to(self, index: int) -> None:
        """Show frame ``index`` of the reviewed stack in the viewer.

        With "show only kept frames" on, a duplicate is not shown: the viewer
        goes to the kept frame of its cluster instead.
        """
        review = self.review
        if review is None:
            return
        layer = self.review_layer
        if self.only_kept.value and self.kept_layer is not None:
            kept_idx = np.flatnonzero(review.kept)
            if not review.kept[index]:
                same = kept_idx[review.cluster[kept_idx] == review.cluster[index]]
                if not len(same):
                    self.status.value = f"frame {index}: its cluster has no kept frame"
                    return
                index = int(same[0])
            position = int(np.searchsorted(kept_idx, index))
            layer = self.kept_layer
        else:
            position = index
        if layer is None:
            return
        coords = np.zeros(layer.ndim)
        coords[0] = position
        self._viewer.dims.set_point(0, float(layer.data_to_world(coords)[0]))

    def _on_item_changed(self, item: Any) -> None:
        from qtpy.QtCore import Qt

        if self._filling_table or item.column() != 4 or self.review is None:
            return
        index = int(item.data(Qt.ItemDataRole.UserRole))
        self.set_kept(index, item.checkState() == Qt.CheckState.Checked)

    def set_kept(self, index: int, kept: bool) -> None:
        """Override the decision for frame ``index`` and redraw its highlight."""
        from qtpy.QtCore import Qt

        review = self.review
        if review is None or bool(review.kept[index]) == kept:
            return
        review.kept[index] = kept
        row = self.row_of(index)
        self._filling_table = True
        try:
            item = self.table.item(row, 4)
            item.setText("KEPT" if kept else "DUPLICATE")
            item.setCheckState(Qt.CheckState.Checked if kept else Qt.CheckState.Unchecked)
        finally:
            self._filling_table = False
        self._refresh_overlay()
        self._update_kept_layer()
        n_user = int((review.kept != review.auto_kept).sum())
        self.status.value = (
            f"{int(review.kept.sum())} kept, {int((~review.kept).sum())} duplicates "
            f"({n_user} decision(s) changed by hand)"
        )

    def _update_kept_layer(self, _value: Any = None) -> None:
        review = self.review
        if review is None:
            return
        show = bool(self.only_kept.value)
        for layer in (self.review_layer, self.overlay_layer):
            if layer is not None:
                layer.visible = not show
        if not show:
            if self.kept_layer is not None and self.kept_layer in self._viewer.layers:
                self._viewer.layers.remove(self.kept_layer)
            self.kept_layer = None
            return
        idx = np.flatnonzero(review.kept)
        if not len(idx):
            self.status.value = "no frame is kept"
            return
        data = review.frames[idx]
        if self.kept_layer is None:
            self.kept_layer = self._viewer.add_image(
                data,
                name=f"{review.name} kept only",
                rgb=data.ndim == 4,
                metadata={"indices": idx},
            )
        else:
            self.kept_layer.data = data
            self.kept_layer.metadata["indices"] = idx

    # -------------------------------------------------------------------- write

    def write(self) -> None:
        """Save kept frames and duplicates to their folders (worker thread)."""
        review = self.review
        if self.running or review is None:
            return
        kept_dir, dup_dir = _path_value(self.kept_dir), _path_value(self.dup_dir)
        if kept_dir is None or dup_dir is None:
            _show_error("choose a folder for kept frames and one for duplicates")
            return
        if kept_dir.resolve() == dup_dir.resolve():
            _show_error(f"{kept_dir}: kept frames and duplicates need different folders")
            return
        self.status.value = "writing..."
        self._launch(
            _write_job,
            review,
            review.kept.copy(),
            kept_dir,
            dup_dir,
            self.fmt.value,
            int(self.quality.value),
            desc="writing frames",
            on_return=self._on_written,
        )
        self._write_dirs = (kept_dir, dup_dir)

    def _on_written(self, outcome: tuple[int, int, bool]) -> None:
        n_kept, n_dup, cancelled = outcome
        kept_dir, dup_dir = self._write_dirs
        word = "write cancelled" if cancelled else "written"
        self.status.value = f"{word}: {n_kept} kept to {kept_dir}, {n_dup} duplicates to {dup_dir}"
        _show_info(self.status.value)

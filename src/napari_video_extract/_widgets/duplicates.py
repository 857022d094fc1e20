"""Duplicate finder dock widget: hash, cluster, review cluster by cluster, write, undo.

A thin view over the Qt-free :class:`~napari_video_extract.core.review.Review`
(clusters, keepers, overrides) and :mod:`~napari_video_extract.core.review_apply`
(journalled, undoable Write / Apply in place). A folder is hashed exactly as
the CLI ``dedup`` hashes it (same clusters as its ``dedup.csv``); a folder a
CLI run already processed opens from its ``dedup.csv``; a video layer is
hashed streaming through its own reader, never held in memory.

Review: one cluster at a time in a gallery layer (every member, keeper framed
thick green, other kept members green, duplicates orange, the selected member
ringed white), stepped with the buttons or the keys below; the threshold
slider re-clusters the hashes already computed at once, with the number of
clusters and duplicates and a histogram of nearest distances beside it.

Keys (viewer-wide while the dock is open): ``n`` / ``p`` next / previous
cluster, ``.`` / ``,`` next / previous member, ``k`` keep, ``d`` duplicate,
``m`` make keeper.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    Slider,
    SpinBox,
)

from napari_video_extract._widgets._common import _path_value, _show_error, _show_info
from napari_video_extract._widgets.review_gallery import (
    DUPLICATE_RGB,
    KEPT_RGB,
    Gallery,
    ThumbnailCache,
    file_thumbnail,
    frame_thumbnail,
    tile_size,
)
from napari_video_extract._widgets.review_jobs import (
    _apply_job,
    _find_job,
    _thumbs_job,
    _undo_job,
    gui_message,
    sparkline,
    to_uint8,
)
from napari_video_extract._widgets.review_layers import FileStack, FrameSubset
from napari_video_extract._widgets.review_table import MembersTable
from napari_video_extract._widgets.settings_store import load_settings, save_settings
from napari_video_extract._widgets.worker import DockRun
from napari_video_extract.core.dedup import CSV_NAME
from napari_video_extract.core.dedup_settings import (
    KEEP_POLICIES,
    METHODS,
    MODES,
    default_threshold,
    hash_bits,
)
from napari_video_extract.core.errors import InputError
from napari_video_extract.core.review import (
    DUPLICATE,
    KEEP,
    Cancelled,
    Review,
    ReviewSettings,
)

if TYPE_CHECKING:
    import napari

__all__ = ["CLUSTER_PALETTE", "DUPLICATE_RGB", "KEPT_RGB", "DuplicateFinderWidget", "to_uint8"]

#: Kept for scripts that coloured clusters; the gallery frames by decision.
CLUSTER_PALETTE = ((31, 119, 180), (148, 103, 189), (23, 190, 207), (227, 119, 194))

_IMAGE_FOLDER_SOURCE = "folder of images"
#: Stills drawn in the gallery and the table at most (a 32 x 32 grid of 80 x 45
#: tiles, 16 MB); bigger clusters show their keeper and first members.
GALLERY_MAX = 1024
_SETTINGS_NAME = "duplicate_finder"
_SAVED = ("method", "hash_size", "threshold", "mode", "keep", "fmt", "quality")
_SAVED_PATHS = ("image_folder", "kept_dir", "dup_dir")
KEYS = {"n": "next_cluster", "p": "previous_cluster", ".": "next_member",
        ",": "previous_member", "k": "keep_selected", "d": "duplicate_selected",
        "m": "keeper_selected"}  # fmt: skip


# ----------------------------------------------------------------------- widget


class DuplicateFinderWidget(Container):
    """Find near-duplicate stills, review them cluster by cluster, write or apply, undo.

    The source is an image stack layer ((N, H, W) or (N, H, W, 3|4), any
    dtype, converted to uint8 through its contrast limits; a video opened by
    this plugin is streamed) or a folder of images. Settings persist between
    sessions. See the module docstring for the keys.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (injected by napari).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QScrollArea, QSizePolicy

        super().__init__(labels=False)
        self._viewer = viewer
        self.review: Review | None = None
        self.source_layer: Any = None
        self.gallery_layer: Any = None
        self.kept_layer: Any = None
        self.gallery: Gallery | None = None
        self.selected: int | None = None
        self._visit: np.ndarray = np.zeros(0, np.int64)
        self._cluster_pos = 0
        self._thumbs: ThumbnailCache | None = None
        self._thumb_cancel = threading.Event()
        self._thumb_worker: Any = None
        self._cluster_worker: Any = None
        self._cluster_cancel = threading.Event()
        self._precompute_cancel = threading.Event()
        self._written: list[Path] = []
        self._closed = False

        self.source = ComboBox(label="source", choices=self._source_choices)
        self.image_folder = FileEdit(label="image folder", mode="d")
        self.use_csv = CheckBox(
            text="use a CLI run's dedup.csv",
            value=True,
            tooltip="review and correct what 'napari-video-extract dedup' decided",
        )
        self.method = ComboBox(label="hash", choices=list(METHODS), value="phash")
        self.hash_size = SpinBox(label="hash size", min=2, max=64, value=8)
        self.mode = ComboBox(label="mode", choices=list(MODES), value="global")
        self.keep = ComboBox(label="keep", choices=list(KEEP_POLICIES), value="first")
        self.find_button = PushButton(text="Find duplicates")
        self.cancel_button = PushButton(text="Cancel")
        self.progress_bar = ProgressBar(label="progress", value=0, max=1)
        self.threshold = Slider(
            label="threshold (bits)",
            min=0,
            max=64,
            value=default_threshold("phash", 8, verify=True),
        )
        self.clusters_info = Label(label="clusters", value="")
        self.histogram = Label(label="distances", value="")
        self.only_dups = CheckBox(text="only clusters with duplicates", value=True)
        self.prev_button = PushButton(text="◀ cluster (p)")
        self.next_button = PushButton(text="cluster ▶ (n)")
        self.cluster_label = Label(label="cluster", value="")
        self.keep_button = PushButton(text="keep (k)")
        self.dup_button = PushButton(text="dup. (d)")
        self.keeper_button = PushButton(text="keeper (m)")
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
        self.apply_button = PushButton(
            text="Apply in place",
            enabled=False,
            tooltip="move duplicates to <folder>/duplicates, like the dedup command",
        )
        self.undo_button = PushButton(text="Undo", tooltip="undo what Write / Apply placed")
        self.status = Label(label="status", value="")
        step = Container(widgets=[self.prev_button, self.next_button], layout="horizontal",
                         labels=False)  # fmt: skip
        decide = Container(
            widgets=[self.keep_button, self.dup_button, self.keeper_button],
            layout="horizontal",
            labels=False,
        )
        apply = Container(
            widgets=[self.write_button, self.apply_button, self.undo_button],
            layout="horizontal",
            labels=False,
        )
        # Everything scrolls in one area, so the dock fits a small screen with
        # other docks open (napari docks ``.native``, which for magicgui's own
        # scrollable containers is the inner widget, without its scroll bars).
        body = Container(labels=True)
        body.extend(
            [
                self.source,
                self.image_folder,
                self.use_csv,
                self.method,
                self.hash_size,
                self.mode,
                self.keep,
                self.find_button,
                self.cancel_button,
                self.progress_bar,
                self.threshold,
                self.clusters_info,
                self.histogram,
                self.only_dups,
                step,
                self.cluster_label,
                decide,
                self.only_kept,
            ]
        )
        self.members_table = MembersTable(self.select)
        self.table = self.members_table.qt  # the QTableWidget, for tests and scripts
        body.extend(
            [
                self.members_table.widget,
                self.kept_dir,
                self.dup_dir,
                self.fmt,
                self.quality,
                apply,
                self.status,
            ]
        )
        # Long texts wrap (or clip, for the histogram) instead of widening the dock.
        for label in (self.clusters_info, self.cluster_label, self.status):
            label.native.setWordWrap(True)
        self.histogram.native.setSizePolicy(
            QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred
        )
        self.members_table.qt.setSizePolicy(
            QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding
        )
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        # Vertical only: the fields shrink to the dock's width (the table scrolls itself).
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body.native)
        bar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(body.native.minimumSizeHint().width() + bar + 4)
        self.native.layout().addWidget(scroll)
        self._body = body  # keep the Python wrapper alive

        self.run = DockRun(
            self.native,
            self.progress_bar,
            [self.find_button, self.write_button],
            self.cancel_button,
        )
        self._restore_settings()
        self.source.changed.connect(self._on_source_changed)
        self.method.changed.connect(self._on_hash_changed)
        self.hash_size.changed.connect(self._on_hash_changed)
        self.threshold.changed.connect(self._on_threshold)
        self.find_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.prev_button.clicked.connect(self.previous_cluster)
        self.next_button.clicked.connect(self.next_cluster)
        self.keep_button.clicked.connect(self.keep_selected)
        self.dup_button.clicked.connect(self.duplicate_selected)
        self.keeper_button.clicked.connect(self.keeper_selected)
        self.only_dups.changed.connect(lambda _v: self._set_visit())
        self.only_kept.changed.connect(self._update_kept_layer)
        self.write_button.clicked.connect(self.write)
        self.apply_button.clicked.connect(self.apply_in_place)
        self.undo_button.clicked.connect(self.undo)
        for widget in (*[getattr(self, n) for n in _SAVED + _SAVED_PATHS], self.use_csv):
            widget.changed.connect(self._save_settings)
        viewer.layers.events.inserted.connect(self._refresh_sources)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        for key, method in KEYS.items():
            viewer.bind_key(key, self._key_handler(method), overwrite=True)
        self._on_source_changed()

    # ------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        saved = load_settings(_SETTINGS_NAME)
        for name in (*_SAVED, *_SAVED_PATHS, "use_csv"):
            if name in saved:
                with contextlib.suppress(ValueError, TypeError):
                    getattr(self, name).value = saved[name]
        self._on_hash_changed(keep_threshold=saved.get("threshold"))

    def _save_settings(self, _value: Any = None) -> None:
        values = {n: getattr(self, n).value for n in (*_SAVED, "use_csv")}
        for name in _SAVED_PATHS:
            path = _path_value(getattr(self, name))
            values[name] = str(path) if path else ""
        save_settings(_SETTINGS_NAME, values)

    def _release(self, *_: Any) -> None:
        """The dock closed: stop its runs, unbind its keys."""
        self._closed = True
        self.run.cancel()
        self._thumb_cancel.set()
        self._precompute_cancel.set()
        self._cluster_cancel.set()
        for key in KEYS:
            with contextlib.suppress(Exception):
                self._viewer.bind_key(key, None, overwrite=True)

    def _key_handler(self, method: str):
        def handler(_viewer: Any) -> None:
            getattr(self, method)()

        handler.__name__ = f"duplicate_finder_{method}"
        return handler

    # -------------------------------------------------------------- sources

    def _source_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        ours = {id(x) for x in (self.gallery_layer, self.kept_layer) if x is not None}
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
        if layer is self.gallery_layer:
            self.gallery_layer = None
        if layer is self.kept_layer:
            self.kept_layer = None
        if layer is self.source_layer:
            self.source_layer = None
        self._refresh_sources()

    def _on_source_changed(self, _value: Any = None) -> None:
        is_folder = self.source.value == _IMAGE_FOLDER_SOURCE
        self.image_folder.visible = is_folder
        self.use_csv.visible = is_folder

    def _on_hash_changed(self, _value: Any = None, *, keep_threshold: Any = None) -> None:
        # A bad combination (whash with a size that is not a power of two) is
        # reported when the search starts.
        with contextlib.suppress(ValueError):
            method, size = self.method.value, int(self.hash_size.value)
            self.threshold.max = hash_bits(method, size)
            value = keep_threshold if keep_threshold is not None else None
            self.threshold.value = (
                int(value) if value is not None else default_threshold(method, size, verify=True)
            )

    def _settings(self) -> ReviewSettings:
        return ReviewSettings(
            method=self.method.value,
            hash_size=int(self.hash_size.value),
            threshold=int(self.threshold.value),
            mode=self.mode.value,
            keep=self.keep.value,
        )

    # ------------------------------------------------------------------ run

    @property
    def running(self) -> bool:
        """Whether a search, write, apply or undo is in progress."""
        return self.run.running

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
                kind = "csv" if self.use_csv.value and (folder / CSV_NAME).is_file() else "folder"
                source: dict[str, Any] = {"kind": kind, "folder": folder, "name": folder.name}
            elif value is None:
                raise ValueError("choose a source layer or a folder of images")
            else:
                metadata = value.metadata if isinstance(value.metadata, dict) else {}
                source = {
                    "kind": "layer",
                    "layer": value,
                    "data": value.data,
                    "path": metadata.get("path"),
                    "contrast_limits": None
                    if value.data.dtype == np.uint8
                    else value.contrast_limits,
                    "features": metadata.get("features"),
                    "name": value.name,
                }
        except (ValueError, InputError) as exc:
            self._fail(exc)
            return
        self._pending = source
        self.status.value = "reading dedup.csv..." if source["kind"] == "csv" else "hashing..."
        source["phase"] = {"name": "hashing"}
        self.run.start(_find_job, source, settings, on_return=self._on_found, on_error=self._fail)
        if self.run.worker is not None:
            self.run.worker.yielded.connect(self._on_search_progress)

    def _on_search_progress(self, message: tuple[int, int]) -> None:
        """Name the phase under way on the status line (the bar shows its progress)."""
        done, total = message
        phase = self._pending.get("phase", {}).get("name")
        if self.run.cancel_event.is_set():
            return  # "cancelling..." stays
        words = "verifying candidates" if phase == "verifying" else "hashing"
        with contextlib.suppress(RuntimeError):
            self.status.value = f"{words}: {done:,} / {total:,}"

    def cancel(self) -> None:
        """Stop the running search or write."""
        if self.running:
            self.run.cancel()
            self.status.value = "cancelling..."

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            self.status.value = "cancelled"
            return
        message = gui_message(exc)
        with contextlib.suppress(RuntimeError):
            self.status.value = f"error: {message}"
        _show_error(message)

    def _on_found(self, review: Review) -> None:
        source = self._pending
        self._clear_review_layers()
        self.review = review
        self.source_layer = source.get("layer")
        if review.paths is not None:
            # review.paths, not a copy: Apply in place moves files.
            self._thumbs = ThumbnailCache(lambda i, box: file_thumbnail(review.paths[i], box))
        else:
            data, limits = source["data"], source.get("contrast_limits")
            self._thumbs = ThumbnailCache(
                lambda i, box: frame_thumbnail(to_uint8(np.asarray(data[i]), limits), box)
            )
        if review.settings.threshold != self.threshold.value:
            self.threshold.changed.disconnect(self._on_threshold)
            self.threshold.value = int(review.settings.threshold)
            self.threshold.changed.connect(self._on_threshold)
        self.only_kept.enabled = True
        self.write_button.enabled = True
        self.apply_button.enabled = review.folder is not None
        self._set_visit()
        self._show_summary()
        note = " (from dedup.csv)" if source["kind"] == "csv" else ""
        self.status.value = review.summary() + note
        self._precompute(review)
        if review.unreadable:
            path, why = review.unreadable[0]
            _show_error(
                f"{len(review.unreadable)} unreadable image(s) skipped, e.g. {path}: {why}"
            )

    def _precompute(self, review: Review) -> None:
        """Cluster at the thresholds around the current one in the background."""
        self._precompute_cancel.set()
        cancel = self._precompute_cancel = threading.Event()
        t, top = int(review.settings.threshold), int(self.threshold.max)
        if review.settings.verify:
            # A verified clustering takes seconds, not milliseconds: the next steps only.
            near = sorted(range(max(0, t - 3), min(top, t + 3) + 1), key=lambda v: (abs(v - t), v))
        else:
            near = sorted(range(min(top, 3 * max(t, 4)) + 1), key=lambda v: (abs(v - t), v))
        # A plain daemon thread, not a Qt worker: a verified warm-up may still
        # run when the viewer closes, and it reports nothing (a failing step
        # fails again, in view, when the slider reaches it).
        threading.Thread(
            target=review.precompute,
            args=(near,),
            kwargs={"cancel": cancel},
            daemon=True,
            name="nve-precompute",
        ).start()

    # ------------------------------------------------------------- clusters

    def _on_threshold(self, value: int) -> None:
        if self.review is None:
            return
        value = int(value)
        if self.review.is_clustered(threshold=value):
            self._apply_threshold(value)
        else:
            # A verified clustering takes seconds: compute it off the GUI thread.
            self._cluster_in_background(self.review, value)

    def _apply_threshold(self, value: int) -> None:
        try:
            self.review.recluster(threshold=value)
        except ValueError as exc:
            self._fail(exc)
            return
        self._set_visit()
        self._show_summary()
        self._update_kept_layer()

    def _cluster_in_background(self, review: Review, value: int) -> None:
        from napari.qt.threading import create_worker

        self.clusters_info.value = f"clustering at {value} bits..."
        worker = create_worker(
            review.cluster_at, value, cancel=self._cluster_cancel, _start_thread=False
        )
        worker.returned.connect(lambda _=None: self._on_clustered(review, value))
        worker.errored.connect(lambda exc: None if self._closed else self._fail(exc))
        self._cluster_worker = worker
        worker.start()

    def _on_clustered(self, review: Review, value: int) -> None:
        # Only the slider's latest position is shown, and only for this review.
        if self._closed or review is not self.review or int(self.threshold.value) != value:
            return
        self._apply_threshold(value)

    def _show_summary(self) -> None:
        review = self.review
        n_kept = int(review.kept.sum())
        self.clusters_info.value = (
            f"{review.n_clusters} clusters, {review.n - n_kept} duplicates of {review.n}"
        )
        self.histogram.value = sparkline(review.histogram(), int(review.settings.threshold))
        self.histogram.tooltip = (
            "stills by distance to their nearest other still (log scale), "
            "bits 0 to the right; | marks the threshold"
        )

    def _set_visit(self) -> None:
        review = self.review
        if review is None:
            return
        counts = np.bincount(review.cluster)
        ids = review.cluster_ids
        visit = ids[counts[ids] > 1] if self.only_dups.value else ids
        keep_cluster = int(review.cluster[self.selected]) if self.selected is not None else None
        self._visit = visit if len(visit) else ids
        pos = 0
        if keep_cluster is not None and keep_cluster in set(self._visit.tolist()):
            pos = int(np.flatnonzero(self._visit == keep_cluster)[0])
        self.show_cluster(pos, select=self.selected)

    @property
    def current_cluster(self) -> int | None:
        """Cluster id shown in the gallery."""
        if self.review is None or not len(self._visit):
            return None
        return int(self._visit[self._cluster_pos])

    def next_cluster(self) -> None:
        """Show the next cluster."""
        if len(self._visit):
            self.show_cluster(min(self._cluster_pos + 1, len(self._visit) - 1))

    def previous_cluster(self) -> None:
        """Show the previous cluster."""
        if len(self._visit):
            self.show_cluster(max(self._cluster_pos - 1, 0))

    def show_cluster(self, position: int, *, select: int | None = None) -> None:
        """Show cluster number ``position`` (in stepping order) in the gallery and table."""
        review = self.review
        if review is None or not len(self._visit):
            return
        self._cluster_pos = int(position)
        members = review.members(self.current_cluster)
        if select is None or select not in set(members.tolist()):
            select = int(review.keeper[members[0]])
        self.selected = select
        shown = self._shown_members(members)
        note = "" if len(shown) == len(members) else f" (first {len(shown):,} shown)"
        self.cluster_label.value = (
            f"{self._cluster_pos + 1} / {len(self._visit)}: c{self.current_cluster}, "
            f"{len(members):,} stills{note}"
        )
        self._fill_table(shown)
        self._load_gallery(shown)
        self.select(select)

    def _shown_members(self, members: np.ndarray) -> np.ndarray:
        """The members drawn: all, or the keeper and the first ones up to GALLERY_MAX."""
        if len(members) <= GALLERY_MAX:
            return members
        keeper = int(self.review.keeper[members[0]])
        first = members[members != keeper][: GALLERY_MAX - 1]
        return np.sort(np.append(first, keeper))

    def _load_gallery(self, members: np.ndarray) -> None:
        from napari.qt.threading import create_worker

        self._thumb_cancel.set()
        cancel = self._thumb_cancel = threading.Event()
        box = tile_size(len(members))
        worker = create_worker(
            _thumbs_job, members, box, self._thumbs, cancel, _start_thread=False
        )
        worker.returned.connect(self._on_thumbs)
        worker.errored.connect(self._fail)
        self._thumb_worker = worker
        worker.start()

    def _on_thumbs(self, outcome: Any) -> None:
        if outcome is None or self.review is None or self._closed:
            return
        members, thumbs = outcome
        if self.current_cluster is None or not np.array_equal(
            members, self._shown_members(self.review.members(self.current_cluster))
        ):
            return  # a newer cluster is being loaded
        self.gallery = Gallery(members, thumbs)
        self._render_gallery()

    @property
    def gallery_members(self) -> np.ndarray | None:
        """Item indices drawn in the gallery now (None before the first one)."""
        return None if self.gallery is None else self.gallery.members

    def _render_gallery(self) -> None:
        review, gallery = self.review, self.gallery
        if review is None or gallery is None:
            return
        keeper = int(review.keeper[gallery.members[0]])
        mosaic = gallery.render(review.kept, keeper, self.selected)
        if self.gallery_layer is None or self.gallery_layer not in self._viewer.layers:
            translate = (0, 0)
            beside = self._video_layer(int(gallery.members[0]))
            if beside is None and self.source_layer in self._viewer.layers:
                beside = self.source_layer
            if beside is not None and beside in self._viewer.layers:
                # Right of the video (or source stack), so both are seen at once.
                translate = (0, float(beside.extent.world[1][-1]) + 20)
            self.gallery_layer = self._viewer.add_image(
                mosaic, name="cluster gallery", rgb=True, translate=translate
            )
            self.gallery_layer.mouse_drag_callbacks.append(self._on_gallery_click)
            self._viewer.reset_view()
        else:
            self.gallery_layer.data = mosaic

    def _on_gallery_click(self, layer: Any, event: Any) -> None:
        if self.gallery is None:
            return
        y, x = layer.world_to_data(event.position)[-2:]
        k = self.gallery.position_at(y, x)
        if k is not None:
            self.select(int(self.gallery.members[k]))

    # -------------------------------------------------------------- members

    def _fill_table(self, members: np.ndarray) -> None:
        self.members_table.fill(self.review, members)

    def row_of(self, index: int) -> int:
        """Table row of item ``index`` (in the current cluster)."""
        return self.members_table.row_of(index)

    def select(self, index: int) -> None:
        """Select item ``index``: ring it, say its time, move the video to its frame."""
        review = self.review
        if review is None:
            return
        if self.current_cluster is None or int(review.cluster[index]) != self.current_cluster:
            pos = np.flatnonzero(self._visit == review.cluster[index])
            if len(pos):
                self.show_cluster(int(pos[0]), select=index)
                return
        self.selected = int(index)
        self.members_table.select(index)
        overlay = self._text_overlay()
        overlay.text = review.label(index)
        overlay.visible = True
        self._render_gallery()
        self._move_video_to(index)

    def _text_overlay(self) -> Any:
        """The viewer's text overlay (``canvas.overlays.text`` since napari 0.9)."""
        canvas = getattr(self._viewer, "canvas", None)
        overlays = getattr(canvas, "overlays", None)
        if overlays is not None and hasattr(overlays, "text"):
            return overlays.text
        return self._viewer.text_overlay

    def _move_video_to(self, index: int) -> None:
        review = self.review
        frame = int(review.frame[index])
        if frame < 0:
            return
        layer = self._video_layer(index)
        if layer is None:
            return
        if self.only_kept.value and self.kept_layer is not None:
            kept = np.flatnonzero(review.kept)
            target = index if review.kept[index] else int(review.keeper[index])
            position = int(np.searchsorted(kept, target))
            if position < len(kept):
                self._set_frame(self.kept_layer, position)
            return
        self._set_frame(layer, frame)

    def _video_layer(self, index: int) -> Any:
        if self.source_layer is not None and self.review.paths is None:
            return self.source_layer
        name = Path(self.review.video[index]).name
        if not name:
            return None
        for layer in self._viewer.layers:
            path = layer.metadata.get("path") if isinstance(layer.metadata, dict) else None
            if path and Path(path).name == name:
                return layer
        return None

    def _set_frame(self, layer: Any, frame: int) -> None:
        coords = np.zeros(layer.ndim)
        coords[0] = frame
        self._viewer.dims.set_point(0, float(layer.data_to_world(coords)[0]))

    def step_member(self, delta: int) -> None:
        """Select the next (``delta=1``) or previous member of the cluster."""
        if self.review is None or self.selected is None:
            return
        members = self.review.members(self.current_cluster)
        k = int(np.flatnonzero(members == self.selected)[0]) + delta
        self.select(int(members[max(0, min(k, len(members) - 1))]))

    def next_member(self) -> None:
        """Select the next member of the cluster."""
        self.step_member(1)

    def previous_member(self) -> None:
        """Select the previous member of the cluster."""
        self.step_member(-1)

    # ------------------------------------------------------------ decisions

    def set_kept(self, index: int, kept: bool) -> None:
        """Override the decision for item ``index``."""
        if self.review is None:
            return
        self.review.mark(index, KEEP if kept else DUPLICATE)
        self._after_decision(index)

    def keep_selected(self) -> None:
        """Keep the selected still."""
        if self.selected is not None:
            self.set_kept(self.selected, True)

    def duplicate_selected(self) -> None:
        """Mark the selected still a duplicate."""
        if self.selected is not None:
            self.set_kept(self.selected, False)

    def keeper_selected(self) -> None:
        """Make the selected still the keeper of its cluster."""
        if self.review is not None and self.selected is not None:
            self.review.make_keeper(self.selected)
            self._after_decision(self.selected)

    def _after_decision(self, index: int) -> None:
        review = self.review
        self._fill_table(self._shown_members(review.members(int(review.cluster[index]))))
        self.select(index)
        self._show_summary()
        self._update_kept_layer()
        self.status.value = review.summary()

    def _clear_review_layers(self) -> None:
        self._thumb_cancel.set()
        self._precompute_cancel.set()
        for layer in (self.gallery_layer, self.kept_layer):
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        self.gallery_layer = self.kept_layer = None
        self.gallery = None
        self.selected = None
        self.only_kept.value = False

    def _update_kept_layer(self, _value: Any = None) -> None:
        review = self.review
        if review is None:
            return
        show = bool(self.only_kept.value)
        if self.source_layer is not None:
            self.source_layer.visible = not show
        if not show:
            if self.kept_layer is not None and self.kept_layer in self._viewer.layers:
                self._viewer.layers.remove(self.kept_layer)
            self.kept_layer = None
            return
        idx = np.flatnonzero(review.kept)
        if not len(idx):
            self.status.value = "no still is kept"
            return
        if review.paths is not None:
            data: Any = FileStack([review.paths[i] for i in idx])
        else:
            data = FrameSubset(self.source_layer.data, idx)
        if self.kept_layer is None:
            self.kept_layer = self._viewer.add_image(
                data, name=f"{self._pending['name']} kept only", rgb=data.ndim == 4,
                metadata={"indices": idx},
            )  # fmt: skip
        else:
            self.kept_layer.data = data
            self.kept_layer.metadata["indices"] = idx
        # The slider goes onto a kept still: the selected one or its keeper.
        target = self.selected if self.selected is not None else int(idx[0])
        if not review.kept[target]:
            target = int(review.keeper[target]) if review.kept[review.keeper[target]] else idx[0]
        self._set_frame(self.kept_layer, int(np.searchsorted(idx, target)))

    # ---------------------------------------------------------------- apply

    def write(self) -> None:
        """Kept stills to one folder, duplicates to another (journalled; undo with Undo)."""
        from napari_video_extract.core.review_apply import write_review

        review = self.review
        if self.running or review is None:
            return
        kept_dir, dup_dir = _path_value(self.kept_dir), _path_value(self.dup_dir)
        if kept_dir is None or dup_dir is None:
            self._fail(ValueError("choose a folder for kept frames and one for duplicates"))
            return
        read_frame = None
        if review.paths is None:
            data = self.source_layer.data
            limits = None if data.dtype == np.uint8 else self.source_layer.contrast_limits
            read_frame = lambda i: to_uint8(np.asarray(data[i]), limits)  # noqa: E731
        self.status.value = "writing..."
        self._apply_dirs = [kept_dir, dup_dir]
        self.run.start(
            _apply_job,
            write_review,
            (review, kept_dir, dup_dir),
            {"fmt": self.fmt.value, "quality": int(self.quality.value), "read_frame": read_frame},
            on_return=self._on_applied,
            on_error=self._fail,
        )

    def apply_in_place(self) -> None:
        """Move duplicates to ``<folder>/duplicates`` like the CLI (undo with Undo)."""
        from napari_video_extract.core.review_apply import apply_in_place

        review = self.review
        if self.running or review is None or review.folder is None:
            return
        self.status.value = "moving duplicates aside..."
        self._apply_dirs = [review.folder]
        self.run.start(
            _apply_job, apply_in_place, (review,), {}, on_return=self._on_applied,
            on_error=self._fail,
        )  # fmt: skip

    def _on_applied(self, report: Any) -> None:
        for folder in self._apply_dirs:
            if folder in self._written:
                self._written.remove(folder)
            self._written.append(folder)
        where = ", ".join(str(f) for f in self._apply_dirs)
        self.status.value = f"{report.summary()} ({where})"
        if report.errors:
            _show_error(f"{len(report.errors)} still(s) not placed, e.g. {report.errors[0]}")
        else:
            _show_info(self.status.value)

    def undo(self) -> None:
        """Undo every Write / Apply of this dock (or of the chosen output folders)."""
        if self.running:
            return
        folders = list(self._written)
        if not folders:
            folders = [p for p in (_path_value(self.kept_dir), _path_value(self.dup_dir)) if p]
        if not folders:
            self._fail(ValueError("nothing to undo"))
            return
        self.status.value = "undoing..."
        self.run.start(_undo_job, folders, on_return=self._on_undone, on_error=self._fail)

    def _on_undone(self, reports: list) -> None:
        failed = [f for r in reports for f in r.failed]
        restored = sum(len(r.restored) + r.removed_copies for r in reports)
        self._written = [r.folder for r in reports if r.failed]
        if self.review is not None and self.review.folder is not None:
            self.review.paths = list(self.review.original_paths)
        self.status.value = f"undone: {restored} file(s) restored or removed" + (
            f", {len(failed)} left (changed since): e.g. {failed[0][0]}" if failed else ""
        )
        if failed:
            _show_error(self.status.value)

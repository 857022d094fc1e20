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

The dock is one class built from a mixin per concept, each in its module:
:mod:`.review_source_pick` (what is reviewed), :mod:`.review_threshold` (the
slider, counts, histogram), :mod:`.review_browser` (clusters, gallery,
members, decisions, kept-only layer) and :mod:`.review_apply_panel` (Write,
Apply in place, Undo); this module builds the widgets and runs the search.

Keys (viewer-wide while the dock is open): ``n`` / ``p`` next / previous
cluster, ``.`` / ``,`` next / previous member, ``k`` keep, ``d`` duplicate,
``m`` make keeper, ``PageDown`` / ``PageUp`` next / previous gallery page
(a cluster of more than ``GALLERY_MAX`` members).
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

from napari_video_extract._widgets._common import _path_value, _show_error
from napari_video_extract._widgets.review_apply_panel import ApplyPanel
from napari_video_extract._widgets.review_browser import GALLERY_MAX, ClusterBrowser
from napari_video_extract._widgets.review_gallery import (
    DUPLICATE_RGB,
    KEPT_RGB,
    Gallery,
    ThumbnailCache,
    file_thumbnail,
    frame_thumbnail,
)
from napari_video_extract._widgets.review_jobs import (
    _find_job,
    gui_message,
    to_uint8,
)
from napari_video_extract._widgets.review_source_pick import IMAGE_FOLDER_SOURCE, SourcePicker
from napari_video_extract._widgets.review_table import MembersTable
from napari_video_extract._widgets.review_threshold import ThresholdPanel
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
from napari_video_extract.core.memory_release import give_back
from napari_video_extract.core.review import (
    Cancelled,
    Review,
    ReviewSettings,
)

if TYPE_CHECKING:
    import napari

__all__ = [
    "CLUSTER_PALETTE",
    "DUPLICATE_RGB",
    "GALLERY_MAX",
    "KEPT_RGB",
    "DuplicateFinderWidget",
    "to_uint8",
]

#: Kept for scripts that coloured clusters; the gallery frames by decision.
CLUSTER_PALETTE = ((31, 119, 180), (148, 103, 189), (23, 190, 207), (227, 119, 194))

_SETTINGS_NAME = "duplicate_finder"
_SAVED = ("method", "hash_size", "threshold", "mode", "keep", "fmt", "quality")
_SAVED_PATHS = ("image_folder", "kept_dir", "dup_dir")
KEYS = {"n": "next_cluster", "p": "previous_cluster", ".": "next_member",
        ",": "previous_member", "k": "keep_selected", "d": "duplicate_selected",
        "m": "keeper_selected", "PageDown": "next_page", "PageUp": "previous_page"}  # fmt: skip


# ----------------------------------------------------------------------- widget


class DuplicateFinderWidget(  # one mixin per concept, each in its module
    SourcePicker, ThresholdPanel, ClusterBrowser, ApplyPanel, Container
):
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
        self.prev_page_button = PushButton(text="◀ page (PageUp)")
        self.next_page_button = PushButton(text="page ▶ (PageDown)")
        self._page = 0
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
        # Shown for clusters bigger than one gallery (GALLERY_MAX members).
        self.page_buttons = Container(
            widgets=[self.prev_page_button, self.next_page_button],
            layout="horizontal",
            labels=False,
            visible=False,
        )
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
                self.page_buttons,
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
        self.prev_page_button.clicked.connect(self.previous_page)
        self.next_page_button.clicked.connect(self.next_page)
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
            if value == IMAGE_FOLDER_SOURCE:
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
                    # A stills layer at uneven frames shows its stills through a
                    # per-frame view (core.frame_axis): review the stills themselves.
                    "data": getattr(value.data, "stills", value.data),
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
        words = {"verifying": "verifying candidates", "comparing": "comparing hashes"}.get(
            phase, "hashing"
        )
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
        # Nothing of the old review stays: its layers, thumbnails (their
        # loader refers to it) and clusterings go before the new one shows.
        # A first search has nothing to give back: no full collection of the
        # napari heap then (~0.15-0.6 s on the GUI thread before the clusters show).
        had_review = self.review is not None or self._thumbs is not None
        self.review, self._thumbs = None, None
        self._clear_review_layers()
        if had_review:
            give_back()
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

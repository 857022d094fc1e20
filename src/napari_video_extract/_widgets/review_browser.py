"""Stepping through the duplicate finder's clusters.

The gallery, the members table, the selection (and the video moved to it),
decisions, and the "show only kept frames" layer.

A mixin of :class:`~napari_video_extract._widgets.duplicates.DuplicateFinderWidget`
(split out of it by concept; it works on the dock's fields and state).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from napari_video_extract._widgets.review_gallery import (
    Gallery,
    tile_size,
)
from napari_video_extract._widgets.review_jobs import (
    _thumbs_job,
)
from napari_video_extract._widgets.review_layers import FileStack, FrameSubset
from napari_video_extract.core.review import (
    DUPLICATE,
    KEEP,
)

__all__ = ["GALLERY_MAX", "ClusterBrowser"]

#: Stills drawn in the gallery and the table at most (a 32 x 32 grid of 80 x 45
#: tiles, 16 MB); bigger clusters show their keeper and first members.
GALLERY_MAX = 1024


class ClusterBrowser:
    """Part of the duplicate finder dock (see its module docstring)."""

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

    def show_cluster(
        self, position: int, *, select: int | None = None, page: int | None = None
    ) -> None:
        """Show cluster number ``position`` (in stepping order) in the gallery and table.

        A cluster of more than :data:`GALLERY_MAX` members is shown a page at a
        time (``page``; default: the page of ``select``, else the first), the
        keeper on every page.
        """
        review = self.review
        if review is None or not len(self._visit):
            return
        self._cluster_pos = int(position)
        members = review.members(self.current_cluster)
        if select is None or select not in set(members.tolist()):
            select = int(review.keeper[members[0]])
        self.selected = select
        if page is None:
            page = self._page_of(members, select)
        self._page = max(0, min(int(page), self.n_pages(members) - 1))
        shown = self._shown_members(members)
        pages = self.n_pages(members)
        note = (
            ""
            if pages == 1
            else f" (page {self._page + 1} / {pages}, PageUp/PageDown: {len(shown):,} shown, "
            "the keeper on every page)"
        )
        self.cluster_label.value = (
            f"{self._cluster_pos + 1} / {len(self._visit)}: c{self.current_cluster}, "
            f"{len(members):,} stills{note}"
        )
        self.page_buttons.visible = pages > 1
        self._fill_table(shown)
        self._load_gallery(shown)
        self.select(select)

    # ---------------------------------------------------------------- pages

    @staticmethod
    def n_pages(members: np.ndarray) -> int:
        """Gallery pages of a cluster: each shows the keeper and up to GALLERY_MAX - 1 others."""
        if len(members) <= GALLERY_MAX:
            return 1
        return math.ceil((len(members) - 1) / (GALLERY_MAX - 1))

    @property
    def page(self) -> int:
        """The gallery page shown (0-based; clusters up to GALLERY_MAX have one)."""
        return self._page

    def _others(self, members: np.ndarray) -> tuple[int, np.ndarray]:
        keeper = int(self.review.keeper[members[0]])
        return keeper, members[members != keeper]

    def _page_of(self, members: np.ndarray, index: int) -> int:
        """The page showing member ``index`` (the keeper: the page shown now)."""
        if len(members) <= GALLERY_MAX:
            return 0
        keeper, others = self._others(members)
        if int(index) == keeper:
            return min(self._page, self.n_pages(members) - 1)
        return int(np.searchsorted(others, index)) // (GALLERY_MAX - 1)

    def _shown_members(self, members: np.ndarray) -> np.ndarray:
        """The members drawn: all, or the keeper and the current page of the others."""
        if len(members) <= GALLERY_MAX:
            return members
        keeper, others = self._others(members)
        per = GALLERY_MAX - 1
        page = max(0, min(self._page, self.n_pages(members) - 1))
        return np.sort(np.append(others[page * per : (page + 1) * per], keeper))

    def next_page(self) -> None:
        """Show the next page of a cluster too big for one gallery."""
        self._turn_page(1)

    def previous_page(self) -> None:
        """Show the previous page of a cluster too big for one gallery."""
        self._turn_page(-1)

    def _turn_page(self, delta: int) -> None:
        if self.review is None or self.current_cluster is None:
            return
        members = self.review.members(self.current_cluster)
        page = max(0, min(self._page + delta, self.n_pages(members) - 1))
        if page == self._page:
            return
        _keeper, others = self._others(members)
        first = others[page * (GALLERY_MAX - 1)]  # selected: the page's first member
        self.show_cluster(self._cluster_pos, select=int(first), page=page)

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
        elif index not in set(self._shown_members(review.members(self.current_cluster)).tolist()):
            self.show_cluster(self._cluster_pos, select=index)  # on another page
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
        # A finished re-clustering worker's callbacks refer to its review.
        self._cluster_worker = None
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

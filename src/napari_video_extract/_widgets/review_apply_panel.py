"""The duplicate finder's Write / Apply in place / Undo (journalled, through core.review_apply).

A mixin of :class:`~napari_video_extract._widgets.duplicates.DuplicateFinderWidget`
(split out of it by concept; it works on the dock's fields and state).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_video_extract._widgets._common import _path_value, _show_error, _show_info
from napari_video_extract._widgets.review_jobs import (
    _apply_job,
    _undo_job,
    to_uint8,
)

__all__ = ["ApplyPanel"]


class ApplyPanel:
    """Part of the duplicate finder dock (see its module docstring)."""

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

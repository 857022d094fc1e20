"""The duplicate finder's threshold slider, cluster counts and histogram.

A threshold already clustered applies at once; another is clustered in a
worker and shown when ready (if the slider is still there).

A mixin of :class:`~napari_video_extract._widgets.duplicates.DuplicateFinderWidget`
(split out of it by concept; it works on the dock's fields and state).
"""

from __future__ import annotations

import threading

from napari_video_extract._widgets.review_jobs import (
    sparkline,
)
from napari_video_extract.core.memory_release import give_back
from napari_video_extract.core.review import (
    Review,
)

__all__ = ["ThresholdPanel"]


def _precompute_and_give_back(review: Review, thresholds: list[int], *, cancel) -> None:
    """The warm-up, then the memory its verifications used back to the OS."""
    try:
        review.precompute(thresholds, cancel=cancel)
    finally:
        give_back()


class ThresholdPanel:
    """Part of the duplicate finder dock (see its module docstring)."""

    def _precompute(self, review: Review) -> None:
        """Cluster at every threshold of the slider in the background, nearest first."""
        self._precompute_cancel.set()
        cancel = self._precompute_cancel = threading.Event()
        t, top = int(review.settings.threshold), int(self.threshold.max)
        # Every threshold, nearest first: once this has run, moving the slider
        # anywhere is a lookup. A verified clustering verifies only the pairs
        # no earlier clustering of the review did (core.pair_memo), so each
        # step costs what its new candidates cost.
        near = sorted(range(top + 1), key=lambda v: (abs(v - t), v))
        # A plain daemon thread, not a Qt worker: a verified warm-up may still
        # run when the viewer closes, and it reports nothing (a failing step
        # fails again, in view, when the slider reaches it).
        threading.Thread(
            target=_precompute_and_give_back,
            args=(review, near),
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

"""Stills layers in the viewer: which still is shown, its time, and landing on its frame.

A stills layer (``metadata["stills"]``, made by the reader's
:func:`~napari_video_extract._reader.read_stills`) sits on its video's frame
axis. :class:`StillsNavigator` follows the viewer's slider and

* writes the shown still's number, time (``mm:ss.mmm``) and video frame in
  the canvas text overlay (``viewer.canvas.overlays.text``, public API;
  napari's status bar is rewritten by every mouse move, and a layer's
  ``get_status`` is private);
* when a stills layer is the selected layer and a video is open, lands the
  slider on the stills' own frames: stepping moves from still to still and
  the video shows exactly the frame each still was taken from
  (``frame_axis["exact"]``: evenly spaced stills by the layer's transform,
  head-and-tail ones through a
  :class:`~napari_video_extract.core.frame_axis.FrameAxisStills` view).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari

__all__ = ["StillsNavigator", "is_stills_layer"]


def is_stills_layer(layer: Any) -> bool:
    """Whether ``layer`` is a stills layer made by our reader or widgets."""
    meta = getattr(layer, "metadata", None)
    return isinstance(meta, dict) and bool(meta.get("stills")) and "features" in meta


def _is_video_layer(layer: Any) -> bool:
    meta = getattr(layer, "metadata", None)
    return isinstance(meta, dict) and "frame_times" in meta


def _text_overlay(viewer: Any) -> Any:
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; text_overlay before
    return canvas.overlays.text if canvas is not None else viewer.text_overlay


def _still_index(layer: Any, position: float) -> int | None:
    """The still napari shows at world ``position`` of axis 0 (None: none shown)."""
    n = int(layer.data.shape[0])
    coordinate = (position - float(layer.translate[0])) / float(layer.scale[0])
    index = int(np.round(coordinate))  # napari rounds half to even too
    if not 0 <= index < n:
        return None
    still_at = getattr(layer.data, "still_at", None)  # one slice per video frame
    return int(still_at(index)) if still_at is not None else index


class StillsNavigator:
    """Follows the slider for the stills layers of one viewer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer to follow.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._last_position: float | None = None
        self._landing = False
        self._wrote_overlay = False
        viewer.dims.events.current_step.connect(self.update)
        viewer.layers.selection.events.active.connect(self.update)

    def close(self) -> None:
        """Stop following the viewer."""
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            self._viewer.dims.events.current_step.disconnect(self.update)
            self._viewer.layers.selection.events.active.disconnect(self.update)

    def _pick(self) -> Any:
        active = self._viewer.layers.selection.active
        if is_stills_layer(active) and active.visible:
            return active
        for layer in reversed(self._viewer.layers):  # the top-most visible one
            if is_stills_layer(layer) and layer.visible:
                return layer
        return None

    def update(self, _event: Any = None) -> None:
        """Refresh the overlay for the current slider position (and land on a still)."""
        if self._landing or self._viewer.dims.ndim < 3:
            return
        position = float(self._viewer.dims.point[0])
        layer = self._pick()
        overlay = _text_overlay(self._viewer)
        if layer is None:
            if self._wrote_overlay:
                overlay.visible = False
                self._wrote_overlay = False
            self._last_position = position
            return
        features = layer.metadata["features"]
        if layer is self._viewer.layers.selection.active:
            position = self._land(layer, features, position)
        index = _still_index(layer, position)
        if index is None:
            text = f"{layer.name}: no still here"
        else:
            # Here, not at the top: core.review pulls in the dedup engine,
            # which the extraction docks that import this module do not need.
            from napari_video_extract.core.review import format_time

            row = features.row(index)
            frame_text = "" if row["frame"] is None else f" · frame {row['frame']}"
            text = (
                f"{layer.name}: still {index + 1}/{len(features)} · "
                f"{format_time(row['time'], unknown='--:--')}{frame_text}"
            )
        overlay.text = text
        overlay.visible = True
        self._wrote_overlay = True
        self._last_position = position

    def _land(self, layer: Any, features: Any, position: float) -> float:
        """Move the slider onto a still's own frame; the new position."""
        placement = layer.metadata.get("frame_axis") or {}
        if not placement.get("exact") or not any(
            _is_video_layer(other) for other in self._viewer.layers
        ):
            return position
        frames = np.asarray(features["frame"], dtype=float)
        if (frames < 0).any() or position in frames:  # -1: a still of unknown frame
            return position
        last = self._last_position
        if last is not None and position > last:
            later = frames[frames >= position]
            target = later[0] if later.size else frames[-1]
        elif last is not None and position < last:
            earlier = frames[frames <= position]
            target = earlier[-1] if earlier.size else frames[0]
        else:
            target = frames[np.argmin(np.abs(frames - position))]
        self._landing = True
        try:
            self._viewer.dims.set_point(0, float(target))
        finally:
            self._landing = False
        return float(self._viewer.dims.point[0])
